PRAGMA foreign_keys = OFF;
BEGIN;
DELETE FROM offers WHERE trigger_product_id IS NULL OR offer_variant_id IS NULL;
CREATE TABLE offers_rebuilt (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  trigger_product_id TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
  offer_variant_id TEXT NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
  discount_percent_bp INTEGER,
  discount_minor BIGINT,
  currency TEXT,
  text TEXT NOT NULL,
  active BOOLEAN NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
INSERT INTO offers_rebuilt SELECT id, merchant_id, kind, trigger_product_id, offer_variant_id,
  discount_percent_bp, discount_minor, currency, text, active, created_at, updated_at FROM offers;
DROP TABLE offers;
ALTER TABLE offers_rebuilt RENAME TO offers;
CREATE INDEX offers_merchant_idx ON offers (merchant_id, id);
CREATE INDEX offers_trigger_idx ON offers (trigger_product_id);
COMMIT;
PRAGMA foreign_keys = ON;
