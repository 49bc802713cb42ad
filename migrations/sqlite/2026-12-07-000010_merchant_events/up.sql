-- What happens in a merchant's conversations with a person, for the live event stream (GET /v1/events,
-- resumable with Last-Event-ID): thread.queued, thread.assigned, thread.released, message.in,
-- message.out, message.read, checkout.opened, order.paid. Agents' own keys see the events with
-- for_agents whose agent_id is theirs or null (the queue); other keys see every event.
CREATE TABLE merchant_events (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  thread_id TEXT,
  agent_id TEXT,
  for_agents BOOLEAN NOT NULL,
  data TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL
);
CREATE INDEX merchant_events_feed ON merchant_events (merchant_id, id);
