ALTER TABLE pages DROP COLUMN token_last4;
