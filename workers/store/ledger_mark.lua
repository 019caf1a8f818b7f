-- mark: move a list of records of one tenant to a state, with a reason.
-- KEYS: 1 state counts
-- ARGV: 1 key prefix, 2 tenant, 3 new state, 4 reason, 5.. members
-- Invariant: the same as every state change: counts move with the state (see the prelude).
local counts = KEYS[1]
local prefix, tenant, new_state, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now = now_ms()
for i = 5, #ARGV do
  local rec = prefix .. ':rec:' .. tenant .. ':' .. ARGV[i]
  set_state(rec, counts, new_state)
  redis.call('HSET', rec, 'reason', reason, 'updated_ms', now)
  if new_state == 'dead' then redis.call('HSET', rec, 'last_error', reason) end
end
return #ARGV - 4
