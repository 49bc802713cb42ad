DROP TABLE merchant_events;
