-- Work due at a time, done once across every server process: a claim takes the row with
-- FOR UPDATE SKIP LOCKED (PostgreSQL; on SQLite the write transaction is the only writer), does the
-- work and marks it done in the same transaction. One row per kind, subject and purpose: a cart gets
-- one reminder, a booking one reminder, an order one held update per purpose.
--   kind: cart_reminder (subject: the cart), booking_reminder (the booking), held_update (the order;
--         purpose: order_paid or order_refunded) which waits (due_at null) until the shopper writes.
CREATE TABLE scheduled_jobs (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  subject_id TEXT NOT NULL,
  purpose TEXT NOT NULL DEFAULT '',
  thread_id TEXT,
  due_at TIMESTAMP,
  attempts INTEGER NOT NULL DEFAULT 0,
  done_at TIMESTAMP,
  outcome TEXT,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX scheduled_jobs_once ON scheduled_jobs (kind, subject_id, purpose);
CREATE INDEX scheduled_jobs_due ON scheduled_jobs (due_at) WHERE done_at IS NULL;
CREATE INDEX scheduled_jobs_thread ON scheduled_jobs (thread_id) WHERE done_at IS NULL;
-- Merchant settings: minutes a cart waits before its one reminder (0: never), and the local hour (the
-- room type's timezone) of the reminder the day before arrival.
ALTER TABLE merchants ADD COLUMN cart_reminder_minutes INTEGER NOT NULL DEFAULT 60;
ALTER TABLE merchants ADD COLUMN booking_reminder_hour INTEGER NOT NULL DEFAULT 18;
-- How and when the booking's reminder went out: sent, template, held (until the guest writes), no_thread.
ALTER TABLE bookings ADD COLUMN reminder TEXT;
ALTER TABLE bookings ADD COLUMN reminded_at TIMESTAMP;
-- The thread has updates held until its shopper writes again.
ALTER TABLE threads ADD COLUMN has_held BOOLEAN NOT NULL DEFAULT FALSE;
