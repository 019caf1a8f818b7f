-- accept: apply mapped changes of one tenant to the ledger and route each, or drop it as
-- stale, in the order given (a later change of the same record sees the earlier one applied).
-- KEYS: 1 state counts, 2 buffer entries, 3 buffer order, 4 buffered tenants, then one record
--       key per change
-- ARGV: 1 tenant, 2 published ms (0 when unknown), then per change (FIELDS values):
--       version (integer microseconds), route (batch|skip|hold|realtime), member,
--       entry JSON (batch) or payload JSON (realtime, hold) or the event (skip), reason,
--       state to set for skip/hold/realtime routes, the event JSON (batch route)
-- Returns per change, flattened: outcome, then the state (or the buffer's size when buffered).
-- Invariants: a record's version only grows, so a change that is not newer than the last
-- applied one changes nothing; a member is in the buffer at most once (newest entry wins,
-- and it keeps the age of the first entry so max-wait is measured from the oldest change);
-- a record already handed to Virtuous is never buffered again (the Import Tool cannot
-- update an existing gift): its newest event is kept and the gap is closed when the
-- outcome of what was handed over is known (see batches_settle.lua, ledger_confirm.lua).
-- A record whose batch is in flight stays 'batched': only the settle decides what follows.
-- An expired record (a tombstone: see retention_records.lua) is taken as new, except that its
-- version still drops older changes: a replayed old event stays stale after expiry.

local counts, entries, order, tenants = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tenant, published = ARGV[1], ARGV[2]
local FIELDS = 7
-- One clock reading and one buffer count for the whole call: nothing else runs meanwhile.
local now = now_ms()
local buffer_size = redis.call('ZCARD', order)
local any_buffered = false

local function accept(rec, a)
  local version = tonumber(ARGV[a])
  local route, mem, payload, reason = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local target_state, event = ARGV[a + 5], ARGV[a + 6]

  local fields = redis.call('HMGET', rec, 'version', 'state', 'first_ms')
  local state = fields[2]
  if version <= tonumber(fields[1] or '-1') then
    return 'stale', state or ''
  end

  local changed = {'version', ARGV[a], 'reason', reason, 'updated_ms', now}
  if published ~= '0' then
    changed[#changed + 1] = 'published_ms'
    changed[#changed + 1] = published
  end
  if not fields[3] then
    changed[#changed + 1] = 'first_ms'
    changed[#changed + 1] = now
  end

  local in_flight = state == 'batched'
  local handed_over = in_flight or state == 'submitted' or state == 'confirmed'
    or state == 'needs_review' or state == 'update_held'
    or ((state == 'held' or state == 'dead') and redis.call('HEXISTS', rec, 'cut_version') == 1)

  if route == 'batch' and not handed_over then
    redis.call('HSET', entries, mem, payload)
    buffer_size = buffer_size + redis.call('ZADD', order, 'NX', now, mem)
    any_buffered = true
    if state_change(rec, counts, 'buffered', state) then
      changed[#changed + 1] = 'state'
      changed[#changed + 1] = 'buffered'
    end
    redis.call('HSET', rec, unpack(changed))
    return 'buffered', tostring(buffer_size)
  end
  redis.call('HSET', rec, unpack(changed))

  if route == 'batch' then
    -- Kept whole: the event for an update by Gift id, the entry in case Virtuous refuses the
    -- batch in flight (then the newest entry goes out in a later batch).
    redis.call('HSET', rec, 'payload', event, 'pending_entry', payload,
      'reason', 'update_waits_for_real_gift_id')
    if in_flight then return 'held', state end
    set_state(rec, counts, 'update_held', state)
    return 'held', 'update_held'
  end

  -- Every other route takes the record out of the buffer if a previous version waited there.
  if state == 'buffered' then
    redis.call('HDEL', entries, mem)
    buffer_size = buffer_size - redis.call('ZREM', order, mem)
  end
  redis.call('HDEL', rec, 'pending_entry')

  if route == 'skip' then
    if state == false or state == 'expired' or state == 'buffered' or state == 'skipped' then
      set_state(rec, counts, 'skipped', state)
      return 'skipped', 'skipped'
    end
    -- Already handed over: the newest event is kept (applied when the record is next sent)
    -- and the record keeps its state.
    redis.call('HSET', rec, 'last_skip_reason', reason)
    if payload ~= '' then redis.call('HSET', rec, 'payload', payload) end
    return 'skipped', state
  end

  redis.call('HSET', rec, 'payload', payload)
  if in_flight then return route, state end
  set_state(rec, counts, target_state, state)
  return route, target_state
end

local replies = {}
defer_counts()
for i = 5, #KEYS do
  local outcome, detail = accept(KEYS[i], 3 + (i - 5) * FIELDS)
  replies[#replies + 1] = outcome
  replies[#replies + 1] = detail
end
if any_buffered then redis.call('SADD', tenants, tenant) end
flush_counts()
return replies
