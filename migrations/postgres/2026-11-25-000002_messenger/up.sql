-- The Messenger channel: the durable inbox, customers and threads, touches, messages, the outbox.

ALTER TABLE pages ADD COLUMN token_status TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE pages ADD COLUMN human_agent_enabled BOOLEAN NOT NULL DEFAULT FALSE;

-- One row per webhook delivery (a POST body, verified), stored before the 200.
CREATE TABLE webhook_inbox (
  id UUID PRIMARY KEY,
  source TEXT NOT NULL,
  body TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  received_at TIMESTAMP NOT NULL,
  processed_at TIMESTAMP
);
CREATE INDEX webhook_inbox_pending_idx ON webhook_inbox (status, received_at);

CREATE TABLE customers (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  page_id TEXT NOT NULL,
  psid TEXT NOT NULL,
  first_name TEXT,
  locale TEXT,
  timezone_offset INTEGER,
  profile_status TEXT NOT NULL DEFAULT 'pending',
  lease_owner TEXT,
  lease_until TIMESTAMP,
  created_at TIMESTAMP NOT NULL,
  UNIQUE (page_id, psid)
);
CREATE INDEX customers_merchant_idx ON customers (merchant_id);

-- One event per (page, dedup key): a message's mid, or a key derived from the event for those without.
CREATE TABLE messenger_events (
  id UUID PRIMARY KEY,
  inbox_id UUID NOT NULL REFERENCES webhook_inbox (id) ON DELETE CASCADE,
  merchant_id UUID REFERENCES merchants (id) ON DELETE CASCADE,
  customer_id UUID REFERENCES customers (id) ON DELETE CASCADE,
  page_id TEXT NOT NULL,
  psid TEXT NOT NULL,
  dedup_key TEXT NOT NULL,
  kind TEXT NOT NULL,
  occurred_at TIMESTAMP NOT NULL,
  payload TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMP NOT NULL,
  last_error TEXT,
  created_at TIMESTAMP NOT NULL,
  processed_at TIMESTAMP,
  UNIQUE (page_id, dedup_key)
);
CREATE INDEX messenger_events_pending_idx ON messenger_events (status, next_attempt_at);
CREATE INDEX messenger_events_customer_idx ON messenger_events (customer_id, status, occurred_at);
CREATE INDEX messenger_events_merchant_idx ON messenger_events (merchant_id, status, id);

CREATE TABLE threads (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  customer_id UUID NOT NULL UNIQUE REFERENCES customers (id) ON DELETE CASCADE,
  page_id TEXT NOT NULL,
  mode TEXT NOT NULL DEFAULT 'bot',
  human_active_until TIMESTAMP,
  last_inbound_at TIMESTAMP,
  window_ends_at TIMESTAMP,
  ctm_pending BOOLEAN NOT NULL DEFAULT FALSE,
  first_touch_id UUID,
  latest_touch_id UUID,
  latest_ad_id TEXT,
  send_lease_owner TEXT,
  send_lease_until TIMESTAMP,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE INDEX threads_merchant_idx ON threads (merchant_id, id);

CREATE TABLE touches (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  thread_id UUID NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
  source TEXT NOT NULL,
  kind TEXT NOT NULL,
  ref TEXT,
  ad_id TEXT,
  ad_title TEXT,
  post_id TEXT,
  product_id TEXT,
  ads_context_data TEXT,
  occurred_at TIMESTAMP NOT NULL,
  created_at TIMESTAMP NOT NULL
);
CREATE INDEX touches_thread_idx ON touches (thread_id, occurred_at);
CREATE INDEX touches_merchant_ad_idx ON touches (merchant_id, ad_id);

CREATE TABLE messages (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  thread_id UUID NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
  direction TEXT NOT NULL,
  author TEXT NOT NULL,
  kind TEXT NOT NULL,
  mid TEXT,
  text TEXT,
  payload TEXT,
  occurred_at TIMESTAMP NOT NULL,
  created_at TIMESTAMP NOT NULL
);
CREATE INDEX messages_thread_idx ON messages (thread_id, occurred_at, id);

-- Messages to send, drained in order per thread by the sender worker.
CREATE TABLE outbox (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  thread_id UUID NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
  message_id UUID REFERENCES messages (id) ON DELETE SET NULL,
  page_id TEXT NOT NULL,
  psid TEXT NOT NULL,
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  messaging_type TEXT,
  tag TEXT,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMP NOT NULL,
  provider_message_id TEXT,
  last_error TEXT,
  created_at TIMESTAMP NOT NULL,
  sent_at TIMESTAMP
);
CREATE INDEX outbox_pending_idx ON outbox (status, next_attempt_at);
CREATE INDEX outbox_thread_idx ON outbox (thread_id, status, id);
