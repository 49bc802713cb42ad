-- Conversions API for Business Messaging: a Page's dataset and its token (never returned), and the
-- events to post, one row per event_id (Meta does not deduplicate these: we do), drained by a worker
-- with retries and backoff; the row keeps the outcome.

ALTER TABLE pages ADD COLUMN capi_dataset_id TEXT;
ALTER TABLE pages ADD COLUMN capi_access_token TEXT;

CREATE TABLE conversion_events (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  page_id TEXT NOT NULL,
  psid TEXT NOT NULL,
  order_id UUID,
  event_id TEXT NOT NULL UNIQUE,
  event_name TEXT NOT NULL,
  event_time TIMESTAMP NOT NULL,
  value_minor BIGINT NOT NULL,
  currency TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMP NOT NULL,
  last_error TEXT,
  created_at TIMESTAMP NOT NULL,
  sent_at TIMESTAMP
);
CREATE INDEX conversion_events_due_idx ON conversion_events (status, next_attempt_at);
CREATE INDEX conversion_events_merchant_idx ON conversion_events (merchant_id, id);
