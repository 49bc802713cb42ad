-- Agents are people: who answers threads handed to a person, in which languages, on what, how many at
-- once, and whether they are there. Each has their own API key (role agent, bound to them).
CREATE TABLE agents (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  email TEXT NOT NULL,
  languages TEXT NOT NULL,
  skills TEXT NOT NULL,
  max_threads INTEGER NOT NULL,
  presence TEXT NOT NULL DEFAULT 'offline',
  presence_at TIMESTAMP,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  deleted_at TIMESTAMP
);
CREATE UNIQUE INDEX agents_email ON agents (merchant_id, email) WHERE deleted_at IS NULL;
CREATE INDEX agents_merchant ON agents (merchant_id, id);
ALTER TABLE api_keys ADD COLUMN agent_id UUID;
-- A thread handed to a person waits in its merchant's queue (queued_at) until an agent is assigned
-- (assigned_agent_id, assigned_at, routing_reason).
ALTER TABLE threads ADD COLUMN queued_at TIMESTAMP;
ALTER TABLE threads ADD COLUMN assigned_agent_id UUID;
ALTER TABLE threads ADD COLUMN assigned_at TIMESTAMP;
ALTER TABLE threads ADD COLUMN routing_reason TEXT;
-- The agent who let the thread go unanswered: not given it again while it waits.
ALTER TABLE threads ADD COLUMN passed_over_agent_id UUID;
CREATE INDEX threads_queue ON threads (merchant_id, queued_at) WHERE queued_at IS NOT NULL;
CREATE INDEX threads_assigned ON threads (assigned_agent_id) WHERE assigned_agent_id IS NOT NULL;
-- Minutes an assigned agent has to answer before the thread goes to the next.
ALTER TABLE merchants ADD COLUMN agent_answer_minutes INTEGER NOT NULL DEFAULT 5;
