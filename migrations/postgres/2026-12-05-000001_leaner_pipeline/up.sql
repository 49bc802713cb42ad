-- The thread's message list reads each sent message's delivery and Meta's id from its outbox row.
CREATE INDEX outbox_message_idx ON outbox (message_id);

-- A shopper's events are applied in one transaction holding the customer's row: no lease columns.
ALTER TABLE customers DROP COLUMN lease_owner;
ALTER TABLE customers DROP COLUMN lease_until;
