-- Checkout: orders frozen from carts, stock reservations, per-merchant order numbers, Stripe events
-- stored before processing, refunds.

CREATE TABLE order_counters (
  merchant_id TEXT PRIMARY KEY REFERENCES merchants (id) ON DELETE CASCADE,
  last_number BIGINT NOT NULL
);

CREATE TABLE orders (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  thread_id TEXT REFERENCES threads (id) ON DELETE SET NULL,
  cart_id TEXT REFERENCES carts (id) ON DELETE SET NULL,
  number TEXT NOT NULL,
  status TEXT NOT NULL,
  disputed BOOLEAN NOT NULL DEFAULT FALSE,
  currency TEXT NOT NULL,
  subtotal_minor BIGINT NOT NULL CHECK (subtotal_minor >= 0),
  discount_minor BIGINT NOT NULL CHECK (discount_minor >= 0),
  total_minor BIGINT NOT NULL CHECK (total_minor >= 0),
  refunded_minor BIGINT NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
  discount_id TEXT,
  discount_code TEXT,
  cart_fingerprint TEXT NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  stripe_session_id TEXT,
  stripe_session_url TEXT,
  stripe_payment_intent_id TEXT,
  expires_at TIMESTAMP,
  touch_id TEXT,
  ad_id TEXT,
  paid_at TIMESTAMP,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  UNIQUE (merchant_id, number)
);
CREATE INDEX orders_merchant_idx ON orders (merchant_id, id);
CREATE INDEX orders_status_idx ON orders (status, expires_at);
CREATE UNIQUE INDEX orders_stripe_session_idx ON orders (stripe_session_id);

CREATE TABLE order_lines (
  id TEXT PRIMARY KEY,
  order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  variant_id TEXT REFERENCES variants (id) ON DELETE SET NULL,
  product_id TEXT,
  title TEXT NOT NULL,
  variant_name TEXT NOT NULL,
  sku TEXT NOT NULL,
  image_url TEXT,
  unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  total_minor BIGINT NOT NULL CHECK (total_minor >= 0),
  offer_id TEXT
);
CREATE INDEX order_lines_order_idx ON order_lines (order_id);

-- Stock taken from a variant for an order: held until paid (committed) or given back (released).
CREATE TABLE reservations (
  id TEXT PRIMARY KEY,
  order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  variant_id TEXT NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  status TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE INDEX reservations_order_idx ON reservations (order_id);

-- Every Stripe event, stored before the 200 and deduplicated by Stripe's event id.
CREATE TABLE stripe_events (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMP NOT NULL,
  last_error TEXT,
  received_at TIMESTAMP NOT NULL,
  processed_at TIMESTAMP
);
CREATE INDEX stripe_events_pending_idx ON stripe_events (status, next_attempt_at);

CREATE TABLE refunds (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  stripe_refund_id TEXT UNIQUE,
  amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
  currency TEXT NOT NULL,
  status TEXT NOT NULL,
  reason TEXT,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE INDEX refunds_order_idx ON refunds (order_id);
