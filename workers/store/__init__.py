"""The only code that knows the Redis layout: keys, Lua scripts, ledger, batches, limiter,
cursors, locks and writeback entries."""
