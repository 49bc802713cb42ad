DROP INDEX order_lines_booking_idx;
ALTER TABLE funnel_events DROP COLUMN bookable_id;
ALTER TABLE threads DROP COLUMN stay_bookable_id;
ALTER TABLE order_lines DROP COLUMN booking_id;
ALTER TABLE cart_lines DROP COLUMN booking_id;
