-- Reading a thread's open cart binds its status: a prepared statement cannot use the partial unique
-- index (its predicate is a constant), so PostgreSQL planned that read anew on every call. Any cart of a
-- thread is found through this one; the partial index still allows one open cart per thread.
CREATE INDEX carts_thread_idx ON carts (thread_id);
