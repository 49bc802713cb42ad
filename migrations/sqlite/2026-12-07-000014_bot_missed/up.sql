-- The bot's last answer in the thread could not help (nothing found, a picture): a second in a row hands
-- the thread to a person.
ALTER TABLE threads ADD COLUMN bot_missed BOOLEAN NOT NULL DEFAULT FALSE;
