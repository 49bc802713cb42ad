-- Whether an expired or failed order's Stripe Checkout Session is known to be closed at Stripe, so that
-- a superseded or expired order can never still be paid.
ALTER TABLE orders ADD COLUMN session_closed BOOLEAN NOT NULL DEFAULT FALSE;
