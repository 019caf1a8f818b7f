-- mark: move a list of records of one tenant to a state, with a reason (dead letters, replays).
-- KEYS: 1 state counts
-- ARGV: 1 key prefix, 2 tenant, 3 new state, 4 reason, 5.. members
-- Invariant: the same as every state change: counts move with the state (see the prelude).
-- A dead letter moves only records still waiting on a message (queued or batched): a record at
-- rest or held for something else already has its gap closed or its own way out, and a stale
-- duplicate message dying must not strand it. A replay (any state but 'dead') revives only
-- records still dead: one that a later change already moved on keeps where it stands, so a
-- replay never parks it with nothing to send.
local counts = KEYS[1]
local prefix, tenant, new_state, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now = now_ms()
local moved = 0
for i = 5, #ARGV do
  local rec = prefix .. ':rec:' .. tenant .. ':' .. ARGV[i]
  local state = redis.call('HGET', rec, 'state')
  local waiting = state == 'queued' or state == 'batched'
  if (new_state == 'dead' and waiting) or (new_state ~= 'dead' and state == 'dead') then
    set_state(rec, counts, new_state)
    redis.call('HSET', rec, 'reason', reason, 'updated_ms', now)
    if new_state == 'dead' then redis.call('HSET', rec, 'last_error', reason) end
    moved = moved + 1
  end
end
return moved
