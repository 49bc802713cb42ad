ALTER TABLE conversion_events DROP COLUMN click_id;
ALTER TABLE conversion_events DROP COLUMN account_id;
