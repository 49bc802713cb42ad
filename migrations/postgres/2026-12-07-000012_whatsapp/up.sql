-- WhatsApp Cloud API numbers are connected like Pages: one row per Meta account id (here the phone
-- number's id), with its token sealed the same way. `kind` tells them apart.
ALTER TABLE pages ADD COLUMN kind TEXT NOT NULL DEFAULT 'messenger';
ALTER TABLE pages ADD COLUMN waba_id TEXT;
ALTER TABLE pages ADD COLUMN display_phone_number TEXT;
ALTER TABLE pages ADD COLUMN catalog_id TEXT;
