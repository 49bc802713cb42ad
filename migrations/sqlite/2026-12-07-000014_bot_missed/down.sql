ALTER TABLE threads DROP COLUMN bot_missed;
