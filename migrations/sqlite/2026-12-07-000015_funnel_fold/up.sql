-- Funnel events reach the daily rollup through a background fold, in batches, no longer in the
-- shopper's transaction: there the shared rollup row of an ad stayed locked until the commit, so every
-- shopper of that ad waited for the previous one's commit. `rolled_up` says whether funnel_daily counts
-- the event yet (the events already there are counted); reports add the events not folded yet.
ALTER TABLE funnel_events ADD COLUMN rolled_up BOOLEAN NOT NULL DEFAULT TRUE;
CREATE INDEX funnel_events_to_roll_up ON funnel_events (id) WHERE NOT rolled_up;
