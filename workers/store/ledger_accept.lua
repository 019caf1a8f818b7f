-- accept: apply one mapped change to the ledger and route it, or drop it as stale.
-- KEYS: 1 record, 2 state counts, 3 buffer entries, 4 buffer order, 5 buffered tenants
-- ARGV: 1 version (integer microseconds), 2 route (batch|skip|hold|realtime), 3 member,
--       4 entry JSON (batch) or payload JSON (realtime, hold) or the event (skip),
--       5 reason, 6 tenant, 7 published ms (0 when unknown), 8 state to set for
--       skip/hold/realtime routes, 9 the event JSON (batch route)
-- Invariants: a record's version only grows, so a change that is not newer than the last
-- applied one changes nothing; a member is in the buffer at most once (newest entry wins,
-- and it keeps the age of the first entry so max-wait is measured from the oldest change);
-- a record already handed to Virtuous is never buffered again (the Import Tool cannot
-- update an existing gift): its newest event is kept and the gap is closed when the
-- outcome of what was handed over is known (see batches_settle.lua, ledger_confirm.lua).
-- A record whose batch is in flight stays 'batched': only the settle decides what follows.
-- An expired record (a tombstone: see retention_records.lua) is taken as new, except that its
-- version still drops older changes: a replayed old event stays stale after expiry.

local rec, counts, entries, order, tenants = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local version = tonumber(ARGV[1])
local route, mem, payload, reason, tenant = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local published, target_state = ARGV[7], ARGV[8]

local current = tonumber(redis.call('HGET', rec, 'version') or '-1')
if version <= current then
  return {'stale', redis.call('HGET', rec, 'state') or ''}
end

local now = now_ms()
local state = redis.call('HGET', rec, 'state')
redis.call('HSET', rec, 'version', ARGV[1], 'reason', reason, 'updated_ms', now)
if published ~= '0' then redis.call('HSET', rec, 'published_ms', published) end
if not redis.call('HGET', rec, 'first_ms') then redis.call('HSET', rec, 'first_ms', now) end

local in_flight = state == 'batched'
local handed_over = in_flight or state == 'submitted' or state == 'confirmed'
  or state == 'needs_review' or state == 'update_held'
  or ((state == 'held' or state == 'dead') and redis.call('HEXISTS', rec, 'cut_version') == 1)

if route == 'batch' then
  if handed_over then
    -- Kept whole: the event for an update by Gift id, the entry in case Virtuous refuses the
    -- batch in flight (then the newest entry goes out in a later batch).
    redis.call('HSET', rec, 'payload', ARGV[9], 'pending_entry', payload,
      'reason', 'update_waits_for_real_gift_id')
    if in_flight then return {'held', state} end
    set_state(rec, counts, 'update_held')
    return {'held', 'update_held'}
  end
  redis.call('HSET', entries, mem, payload)
  redis.call('ZADD', order, 'NX', now, mem)
  redis.call('SADD', tenants, tenant)
  set_state(rec, counts, 'buffered')
  return {'buffered', tostring(redis.call('ZCARD', order))}
end

-- Every other route takes the record out of the buffer if a previous version waited there.
if state == 'buffered' then
  redis.call('HDEL', entries, mem)
  redis.call('ZREM', order, mem)
end
redis.call('HDEL', rec, 'pending_entry')

if route == 'skip' then
  if state == false or state == 'expired' or state == 'buffered' or state == 'skipped' then
    set_state(rec, counts, 'skipped')
    return {'skipped', 'skipped'}
  end
  -- Already handed over: the newest event is kept (applied when the record is next sent) and
  -- the record keeps its state.
  redis.call('HSET', rec, 'last_skip_reason', reason)
  if payload ~= '' then redis.call('HSET', rec, 'payload', payload) end
  return {'skipped', state}
end

redis.call('HSET', rec, 'payload', payload)
if in_flight then return {route, state} end
set_state(rec, counts, target_state)
return {route, target_state}
