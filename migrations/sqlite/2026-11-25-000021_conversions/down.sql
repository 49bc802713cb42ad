DROP TABLE conversion_events;
ALTER TABLE pages DROP COLUMN capi_access_token;
ALTER TABLE pages DROP COLUMN capi_dataset_id;
