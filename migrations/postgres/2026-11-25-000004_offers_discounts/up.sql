-- Upsell offers, discount codes, and what the conversation needs to use them: each cart's offer
-- decisions, the line an offer added, the code applied; business hours and the away text per merchant.

CREATE TABLE offers (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  trigger_product_id UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
  offer_variant_id UUID NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
  discount_percent_bp INTEGER,
  discount_minor BIGINT,
  currency TEXT,
  text TEXT NOT NULL,
  active BOOLEAN NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE INDEX offers_merchant_idx ON offers (merchant_id, id);
CREATE INDEX offers_trigger_idx ON offers (trigger_product_id);

CREATE TABLE discounts (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  code TEXT NOT NULL,
  kind TEXT NOT NULL,
  percent_bp INTEGER,
  amount_minor BIGINT,
  currency TEXT,
  starts_at TIMESTAMP,
  ends_at TIMESTAMP,
  min_subtotal_minor BIGINT,
  max_redemptions INTEGER,
  redemptions INTEGER NOT NULL DEFAULT 0 CHECK (redemptions >= 0),
  active BOOLEAN NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  UNIQUE (merchant_id, code)
);

CREATE TABLE cart_offers (
  id UUID PRIMARY KEY,
  cart_id UUID NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
  offer_id UUID NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
  status TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL,
  UNIQUE (cart_id, offer_id)
);

ALTER TABLE cart_lines ADD COLUMN offer_id UUID;
ALTER TABLE carts ADD COLUMN discount_id UUID;
ALTER TABLE merchants ADD COLUMN business_hours TEXT;
ALTER TABLE merchants ADD COLUMN away_text TEXT;
ALTER TABLE threads ADD COLUMN away_sent_on TEXT;
ALTER TABLE pages ADD COLUMN profile_status TEXT NOT NULL DEFAULT 'pending';
