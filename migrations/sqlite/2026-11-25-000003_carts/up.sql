-- Shopping in the thread: one open cart per thread, its lines with a price snapshot, and the funnel
-- events (product views, add-to-carts) recorded with the thread's touch at the time.

CREATE TABLE carts (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
  status TEXT NOT NULL,
  currency TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX carts_one_open_per_thread ON carts (thread_id) WHERE status = 'open';

CREATE TABLE cart_lines (
  id TEXT PRIMARY KEY,
  cart_id TEXT NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
  variant_id TEXT REFERENCES variants (id) ON DELETE SET NULL,
  product_id TEXT,
  title TEXT NOT NULL,
  variant_name TEXT NOT NULL,
  sku TEXT NOT NULL,
  image_url TEXT,
  unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
  currency TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE INDEX cart_lines_cart_idx ON cart_lines (cart_id, id);

CREATE TABLE funnel_events (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  touch_id TEXT,
  ad_id TEXT,
  ref TEXT,
  product_id TEXT,
  value_minor BIGINT,
  currency TEXT,
  occurred_at TIMESTAMP NOT NULL
);
CREATE INDEX funnel_events_merchant_idx ON funnel_events (merchant_id, occurred_at);
CREATE INDEX funnel_events_ad_idx ON funnel_events (merchant_id, ad_id, occurred_at);
