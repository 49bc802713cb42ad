-- Offers for stays: a bookable can trigger an offer, of another bookable (`upgrade`, at a fixed price
-- difference per night or the difference of the two rooms' rates) or of a catalog variant (`add_on`,
-- per night or per stay). Product offers keep their columns; the trigger and target columns become
-- nullable, one pair or the other is set.

PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE offers_rebuilt (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  trigger_product_id TEXT REFERENCES products (id) ON DELETE CASCADE,
  offer_variant_id TEXT REFERENCES variants (id) ON DELETE CASCADE,
  discount_percent_bp INTEGER,
  discount_minor BIGINT,
  currency TEXT,
  text TEXT NOT NULL,
  active BOOLEAN NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  trigger_bookable_id TEXT REFERENCES bookables (id) ON DELETE CASCADE,
  offer_bookable_id TEXT REFERENCES bookables (id) ON DELETE CASCADE,
  per_night BOOLEAN NOT NULL DEFAULT FALSE,
  night_delta_minor BIGINT,
  CHECK ((trigger_product_id IS NULL) <> (trigger_bookable_id IS NULL)),
  CHECK ((offer_variant_id IS NULL) <> (offer_bookable_id IS NULL))
);
INSERT INTO offers_rebuilt (id, merchant_id, kind, trigger_product_id, offer_variant_id, discount_percent_bp,
  discount_minor, currency, text, active, created_at, updated_at)
SELECT id, merchant_id, kind, trigger_product_id, offer_variant_id, discount_percent_bp, discount_minor,
  currency, text, active, created_at, updated_at FROM offers;
DROP TABLE offers;
ALTER TABLE offers_rebuilt RENAME TO offers;
CREATE INDEX offers_merchant_idx ON offers (merchant_id, id);
CREATE INDEX offers_trigger_idx ON offers (trigger_product_id);
CREATE INDEX offers_trigger_bookable_idx ON offers (trigger_bookable_id);
COMMIT;
PRAGMA foreign_keys = ON;
