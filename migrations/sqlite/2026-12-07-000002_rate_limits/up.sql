-- Counted events (failed token exchanges, refused webhooks ...) per bucket and key (a client address, a
-- key prefix), in a fixed window that restarts once it has ended: in the database, so every instance
-- counts against the same limit.
CREATE TABLE rate_limits (
  bucket TEXT NOT NULL,
  key TEXT NOT NULL,
  hits INTEGER NOT NULL,
  resets_at TIMESTAMP NOT NULL,
  PRIMARY KEY (bucket, key)
);

-- Ended windows are swept by time.
CREATE INDEX rate_limits_resets_at_idx ON rate_limits (resets_at);
