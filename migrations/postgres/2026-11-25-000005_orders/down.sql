DROP TABLE refunds;
DROP TABLE stripe_events;
DROP TABLE reservations;
DROP TABLE order_lines;
DROP TABLE orders;
DROP TABLE order_counters;
