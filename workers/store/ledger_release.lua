-- release: a dependency is known; every record held for it goes back to the send queue.
-- KEYS: 1 state counts, 2 waiting set
-- ARGV: 1 key prefix, 2 tenant
-- Returns the members released (the caller enqueues their sends).
-- Invariant: each held record is released once (the set is emptied in the same step).
local counts, waiting = KEYS[1], KEYS[2]
local prefix, tenant = ARGV[1], ARGV[2]
local released = {}
for _, mem in ipairs(redis.call('SMEMBERS', waiting)) do
  local rec = prefix .. ':rec:' .. tenant .. ':' .. mem
  if redis.call('HGET', rec, 'state') == 'held' then
    set_state(rec, counts, 'queued')
    redis.call('HSET', rec, 'reason', 'dependency known', 'updated_ms', now_ms())
    released[#released + 1] = mem
  end
end
redis.call('DEL', waiting)
return released
