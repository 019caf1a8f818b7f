-- Shared by every script that changes a record's state.
-- Invariant: HGETALL states:{tenant} counts exactly the records in each state, because no
-- record's 'state' field changes anywhere except through set_state.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function set_state(rec, counts, new_state)
  local old = redis.call('HGET', rec, 'state')
  if old == new_state then return end
  if old then redis.call('HINCRBY', counts, old, -1) end
  redis.call('HINCRBY', counts, new_state, 1)
  redis.call('HSET', rec, 'state', new_state)
end

local function writeback(stream, ...)
  redis.call('XADD', stream, '*', ...)
end
