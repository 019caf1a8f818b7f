-- Shared by every script that changes a record's state.
-- Invariant: HGETALL states:{tenant} counts exactly the records in each state, because no
-- record's 'state' field changes anywhere except through set_state (or, in the same step, by
-- the caller of state_change that it told to write it).
-- Invariant: the terminal index (the counts key + ':terminal', a ZSET of record keys) holds
-- exactly the records in a TERMINAL state, scored by when set_state last put them there, so
-- the retention sweep (retention_records.lua) finds what may expire without a scan. It is
-- derived from the counts key so that every state change keeps it without declaring it.

-- Records at rest: nothing of them is on its way anywhere, and only a new version moves them.
-- Only these expire (workers/store/retention.py names the same four).
local TERMINAL = {confirmed = true, sent = true, skipped = true, quarantined = true}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Count changes a script that moves many records applies once at its end (defer_counts, then
-- flush_counts before it returns), so the counts still change in the same atomic step.
local deferred = nil

local function defer_counts() deferred = {} end

local function flush_counts()
  for counts, changes in pairs(deferred) do
    for state, n in pairs(changes) do redis.call('HINCRBY', counts, state, n) end
  end
  deferred = nil
end

-- state_change: all that a change of state keeps in step (the counts, the terminal index), for a
-- caller that writes the 'state' field itself in the same HSET as its other fields: it must
-- write 'state' = new_state when this returns true. known_old: the record's state as the caller
-- just read it (false when it has none), to spare reading it again; omitted, it is read here.
local function state_change(rec, counts, new_state, known_old)
  local old = known_old
  if old == nil then old = redis.call('HGET', rec, 'state') end
  if TERMINAL[new_state] then
    -- Entering a terminal state, or being put there again, (re)starts the retention clock.
    redis.call('ZADD', counts .. ':terminal', now_ms(), rec)
  elseif old and TERMINAL[old] then
    redis.call('ZREM', counts .. ':terminal', rec)
  end
  if old == new_state then return false end
  if deferred then
    local changes = deferred[counts]
    if not changes then
      changes = {}
      deferred[counts] = changes
    end
    if old then changes[old] = (changes[old] or 0) - 1 end
    changes[new_state] = (changes[new_state] or 0) + 1
  else
    if old then redis.call('HINCRBY', counts, old, -1) end
    redis.call('HINCRBY', counts, new_state, 1)
  end
  return true
end

local function set_state(rec, counts, new_state, known_old)
  if state_change(rec, counts, new_state, known_old) then
    redis.call('HSET', rec, 'state', new_state)
  end
end

local function writeback(stream, ...)
  redis.call('XADD', stream, '*', ...)
end
