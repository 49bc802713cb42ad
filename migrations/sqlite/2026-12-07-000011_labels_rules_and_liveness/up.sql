-- Labels: free words a merchant puts on products and room types (e.g. slippers, stays), matched against
-- agents' skills when a thread is routed. A JSON array of strings.
ALTER TABLE products ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE bookables ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
-- Rules, evaluated in position order on every message a shopper sends: when (channel, ad, ref, cart
-- value, VIP, words: a JSON object), then (priority, label, hand over, skill: a JSON object).
CREATE TABLE rules (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  name TEXT NOT NULL,
  enabled BOOLEAN NOT NULL,
  conditions TEXT NOT NULL,
  actions TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE INDEX rules_merchant ON rules (merchant_id, position);
-- What rules decided for a thread: its priority in the queue, its labels, the skill its agent needs,
-- and the first rule that matched (shown in the thread's context).
ALTER TABLE threads ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE threads ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE threads ADD COLUMN skill TEXT;
ALTER TABLE threads ADD COLUMN rule_id TEXT;
-- When an agent's live connection (GET /v1/events) last said they are there: one gone for a few
-- minutes counts as offline.
ALTER TABLE agents ADD COLUMN seen_at TIMESTAMP;
-- When a shopper waiting long for a person was told their place in the queue (once per wait).
ALTER TABLE threads ADD COLUMN place_told_at TIMESTAMP;
