-- Offers for stays: a bookable can trigger an offer, of another bookable (`upgrade`, at a fixed price
-- difference per night or the difference of the two rooms' rates) or of a catalog variant (`add_on`,
-- per night or per stay). Product offers keep their columns; the trigger and target columns become
-- nullable, one pair or the other is set.

ALTER TABLE offers ALTER COLUMN trigger_product_id DROP NOT NULL;
ALTER TABLE offers ALTER COLUMN offer_variant_id DROP NOT NULL;
ALTER TABLE offers ADD COLUMN trigger_bookable_id UUID REFERENCES bookables (id) ON DELETE CASCADE;
ALTER TABLE offers ADD COLUMN offer_bookable_id UUID REFERENCES bookables (id) ON DELETE CASCADE;
ALTER TABLE offers ADD COLUMN per_night BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE offers ADD COLUMN night_delta_minor BIGINT;
ALTER TABLE offers ADD CONSTRAINT offers_one_trigger
  CHECK ((trigger_product_id IS NULL) <> (trigger_bookable_id IS NULL));
ALTER TABLE offers ADD CONSTRAINT offers_one_target
  CHECK ((offer_variant_id IS NULL) <> (offer_bookable_id IS NULL));
CREATE INDEX offers_trigger_bookable_idx ON offers (trigger_bookable_id);
