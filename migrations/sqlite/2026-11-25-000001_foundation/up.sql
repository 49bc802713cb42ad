-- The foundation: merchants and their API keys, Messenger Pages, the catalog.
-- UUIDs are hyphenated text; timestamps are UTC; money is BIGINT minor units plus an ISO 4217 code.

CREATE TABLE merchants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  currency TEXT NOT NULL,
  timezone TEXT NOT NULL,
  demo_slug TEXT UNIQUE,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);

CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  role TEXT NOT NULL CHECK (role IN ('owner', 'catalog', 'marketing', 'agent')),
  label TEXT,
  prefix TEXT NOT NULL,
  key_hash TEXT NOT NULL UNIQUE,
  created_at TIMESTAMP NOT NULL,
  revoked_at TIMESTAMP
);

CREATE TABLE pages (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  page_id TEXT NOT NULL UNIQUE,
  name TEXT,
  access_token TEXT NOT NULL,
  connected_at TIMESTAMP NOT NULL
);

CREATE TABLE products (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  retailer_id TEXT NOT NULL,
  title TEXT NOT NULL,
  description TEXT,
  image_url TEXT,
  url TEXT,
  brand TEXT,
  featured BOOLEAN NOT NULL DEFAULT FALSE,
  search_text TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  UNIQUE (merchant_id, retailer_id)
);

CREATE TABLE variants (
  id TEXT PRIMARY KEY,
  product_id TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  sku TEXT NOT NULL,
  name TEXT NOT NULL,
  options TEXT NOT NULL,
  price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
  currency TEXT NOT NULL,
  stock BIGINT NOT NULL CHECK (stock >= 0),
  position INTEGER NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  UNIQUE (merchant_id, sku)
);

CREATE INDEX api_keys_merchant_idx ON api_keys (merchant_id, id);
CREATE INDEX pages_merchant_idx ON pages (merchant_id, page_id);
CREATE INDEX products_merchant_idx ON products (merchant_id, id);
CREATE INDEX variants_product_idx ON variants (product_id, position);
