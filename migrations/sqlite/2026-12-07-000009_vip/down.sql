ALTER TABLE merchants DROP COLUMN vip_paid_orders;
