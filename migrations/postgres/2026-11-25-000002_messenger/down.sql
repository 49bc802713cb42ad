DROP TABLE outbox;
DROP TABLE messages;
DROP TABLE touches;
DROP TABLE threads;
DROP TABLE messenger_events;
DROP TABLE customers;
DROP TABLE webhook_inbox;
ALTER TABLE pages DROP COLUMN human_agent_enabled;
ALTER TABLE pages DROP COLUMN token_status;
