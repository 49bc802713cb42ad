-- A customer with at least this many paid orders is served first in the agents' queue (0: nobody is).
ALTER TABLE merchants ADD COLUMN vip_paid_orders INTEGER NOT NULL DEFAULT 0;
