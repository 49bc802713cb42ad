-- Checkout recovery: the idempotency key of the Checkout Session request in flight is kept with the
-- order before Stripe is called, so a retry after a crash or a lost answer sends the same key and gets
-- the same session; when Stripe was last asked about an unpaid order (reconciliation); why no receipt
-- reached the shopper; what became of a payment that arrived after the order had ended here.
ALTER TABLE orders ADD COLUMN session_key TEXT;
ALTER TABLE orders ADD COLUMN session_tries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN checked_at TIMESTAMP;
ALTER TABLE orders ADD COLUMN receipt TEXT;
ALTER TABLE orders ADD COLUMN late_payment TEXT;
CREATE INDEX orders_thread_idx ON orders (thread_id);
CREATE INDEX orders_merchant_created_idx ON orders (merchant_id, created_at);
CREATE INDEX orders_merchant_ad_idx ON orders (merchant_id, ad_id);
ALTER TABLE refunds ADD COLUMN request_key TEXT;
CREATE UNIQUE INDEX refunds_request_key_idx ON refunds (order_id, request_key);
