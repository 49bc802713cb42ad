DROP INDEX funnel_events_to_roll_up;
ALTER TABLE funnel_events DROP COLUMN rolled_up;
