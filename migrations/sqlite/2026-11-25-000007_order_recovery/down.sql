DROP INDEX orders_merchant_ad_idx;
DROP INDEX orders_merchant_created_idx;
DROP INDEX orders_thread_idx;
ALTER TABLE orders DROP COLUMN late_payment;
ALTER TABLE orders DROP COLUMN receipt;
ALTER TABLE orders DROP COLUMN checked_at;
ALTER TABLE orders DROP COLUMN session_tries;
ALTER TABLE orders DROP COLUMN session_key;
