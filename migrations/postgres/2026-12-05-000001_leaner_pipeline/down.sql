ALTER TABLE customers ADD COLUMN lease_until TIMESTAMP;
ALTER TABLE customers ADD COLUMN lease_owner TEXT;
DROP INDEX outbox_message_idx;
