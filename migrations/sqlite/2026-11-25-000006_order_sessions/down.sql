ALTER TABLE orders DROP COLUMN session_closed;
