ALTER TABLE threads DROP COLUMN disclosed_at;
ALTER TABLE merchants DROP COLUMN bot_disclosure_after_hours;
ALTER TABLE merchants DROP COLUMN bot_disclosure;
