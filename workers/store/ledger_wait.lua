-- wait: hold a record until a dependency (a donor's Contact id) is known.
-- KEYS: 1 record, 2 state counts, 3 waiting set
-- ARGV: 1 member, 2 reason
-- Invariant: a held record is in the waiting set of what it waits for, in the same step, so
-- learning that id always finds it.
local rec, counts, waiting = KEYS[1], KEYS[2], KEYS[3]
set_state(rec, counts, 'held')
redis.call('HSET', rec, 'reason', ARGV[2], 'updated_ms', now_ms())
redis.call('SADD', waiting, ARGV[1])
return 1
