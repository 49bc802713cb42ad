ALTER TABLE threads DROP COLUMN has_held;
ALTER TABLE bookings DROP COLUMN reminded_at;
ALTER TABLE bookings DROP COLUMN reminder;
ALTER TABLE merchants DROP COLUMN booking_reminder_hour;
ALTER TABLE merchants DROP COLUMN cart_reminder_minutes;
DROP TABLE scheduled_jobs;
