DROP INDEX carts_thread_idx;
