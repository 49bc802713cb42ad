-- How and when the shopper was told each update the business owed them (a receipt, a refund, a stay's
-- reminder or cancellation): told = sent (in the window), template (after it, through the approved
-- utility template), held (until the shopper writes; a later row says when it went), no_thread.
CREATE TABLE shopper_notices (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  thread_id TEXT,
  subject_id TEXT NOT NULL,
  purpose TEXT NOT NULL,
  told TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL
);
CREATE INDEX shopper_notices_subject ON shopper_notices (subject_id, created_at);
