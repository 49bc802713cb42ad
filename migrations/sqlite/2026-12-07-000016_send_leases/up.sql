-- The sender's lease on a thread moves to a table of its own. On the thread's row it made the sender
-- and a shopper's turn wait on each other: a turn holds its thread's row until it commits, and the
-- sender's leases and releases of many threads in one statement locked thread rows one after another,
-- so the two waited on each other and could deadlock. A row here is the sender's alone. It stays after
-- the release (`lease_until` NULL) and is taken again by an upsert.
CREATE TABLE send_leases (
  thread_id TEXT PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
  owner TEXT NOT NULL,
  lease_until TIMESTAMP
);
INSERT INTO send_leases (thread_id, owner, lease_until)
  SELECT id, send_lease_owner, send_lease_until FROM threads WHERE send_lease_owner IS NOT NULL;
ALTER TABLE threads DROP COLUMN send_lease_owner;
ALTER TABLE threads DROP COLUMN send_lease_until;
