-- Stays in the thread: a cart or order line can be a held stay (its booking), the thread remembers the
-- room whose arrival date it asked for (so a typed date answers it), and funnel events can name a room.

ALTER TABLE cart_lines ADD COLUMN booking_id TEXT REFERENCES bookings (id) ON DELETE SET NULL;
ALTER TABLE order_lines ADD COLUMN booking_id TEXT REFERENCES bookings (id) ON DELETE SET NULL;
ALTER TABLE threads ADD COLUMN stay_bookable_id TEXT REFERENCES bookables (id) ON DELETE SET NULL;
ALTER TABLE funnel_events ADD COLUMN bookable_id TEXT;
CREATE INDEX order_lines_booking_idx ON order_lines (booking_id);
