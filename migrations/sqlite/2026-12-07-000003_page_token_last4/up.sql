-- Page access tokens are stored encrypted from now on (src/secrets.rs; start encrypts the ones stored
-- in plaintext so far): what the API shows to recognise one is kept beside it, taken here from the
-- plaintext.
ALTER TABLE pages ADD COLUMN token_last4 TEXT NOT NULL DEFAULT '';
UPDATE pages SET token_last4 = substr(access_token, -4);
