-- index: put records that reached a terminal state before the terminal index existed into it.
-- KEYS: 1 terminal index
-- ARGV: record keys (from a SCAN of the tenant's records)
-- Returns how many were added.
-- Invariant: the same as set_state's: only a record in a TERMINAL state is added, scored by
-- its last change, and one already indexed keeps its score.
local index = KEYS[1]
local added = 0
for _, rec in ipairs(ARGV) do
  local fields = redis.call('HMGET', rec, 'state', 'updated_ms', 'confirmed_ms')
  if fields[1] and TERMINAL[fields[1]] then
    local since = math.max(tonumber(fields[2] or '0'), tonumber(fields[3] or '0'))
    added = added + redis.call('ZADD', index, 'NX', since, rec)
  end
end
return added
