ALTER TABLE threads ADD COLUMN send_lease_owner TEXT;
ALTER TABLE threads ADD COLUMN send_lease_until TIMESTAMP;
UPDATE threads SET send_lease_owner = (SELECT owner FROM send_leases WHERE thread_id = threads.id),
  send_lease_until = (SELECT lease_until FROM send_leases WHERE thread_id = threads.id);
DROP TABLE send_leases;
