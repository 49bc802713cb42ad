-- Automated chats say they are automated (the EU AI Act's transparency duty): in the first automated
-- message of a thread, the first after a silence, and the first after a person hands the thread back.
-- The merchant's own wording per language (JSON object, language -> sentence; null: the built-in ones),
-- the silence in hours, and when each thread was last told.
ALTER TABLE merchants ADD COLUMN bot_disclosure TEXT;
ALTER TABLE merchants ADD COLUMN bot_disclosure_after_hours INTEGER NOT NULL DEFAULT 24;
ALTER TABLE threads ADD COLUMN disclosed_at TIMESTAMP;
