ALTER TABLE pages DROP COLUMN catalog_id;
ALTER TABLE pages DROP COLUMN display_phone_number;
ALTER TABLE pages DROP COLUMN waba_id;
ALTER TABLE pages DROP COLUMN kind;
