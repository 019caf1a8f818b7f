-- confirm: the real Gift id of a record handed to Virtuous in a batch is known (a gift-created
-- webhook or a lookup by reference).
-- KEYS: 1 record, 2 state counts, 3 writeback stream, 4 unconfirmed set, 5 review set,
--       6 recheck hash
-- ARGV: 1 Gift id, 2 source (webhook|lookup), 3 tenant, 4 kind, 5 record id, 6 member
-- Returns {outcome, previous state, published ms}; outcome is unknown | ignored | already |
-- confirmed | release (a newer change waits for this id: the caller sends it now).
-- Invariants: only a record handed over in a batch can be confirmed (a buffered, skipped or
-- quarantined one cannot: nothing of it is in Virtuous, and its own import must still confirm
-- it); a record is confirmed once (a duplicate or late delivery changes nothing); the
-- writeback entry is written in the same step as the ledger change. Level-triggered: when the
-- record wants a newer version than the one Virtuous holds, it is queued for a direct send.
local rec, counts, stream, unconfirmed, review, recheck = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
  KEYS[5], KEYS[6]
local gift_id, source, tenant, kind, id, mem = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  ARGV[6]

local state = redis.call('HGET', rec, 'state')
if not state then return {'unknown', '', '0'} end
local published = redis.call('HGET', rec, 'published_ms') or '0'
if redis.call('HGET', rec, 'confirmed_ms') then return {'already', state, published} end
local confirmable = {batched = true, submitted = true, needs_review = true, update_held = true,
  held = true, dead = true}
if not confirmable[state] or redis.call('HEXISTS', rec, 'cut_version') == 0 then
  return {'ignored', state, published}
end
local now = now_ms()
redis.call('HSET', rec, 'virtuous_id', gift_id, 'confirmed_ms', now, 'confirmed_by', source)
redis.call('ZREM', unconfirmed, mem)
redis.call('ZREM', review, mem)
redis.call('HDEL', recheck, mem)
writeback(stream, 'type', 'gift.confirmed', 'tenant', tenant, 'kind', kind, 'id', id,
  'virtuous_id', gift_id, 'batch_id', redis.call('HGET', rec, 'batch_id') or '',
  'source', source, 'at_ms', now)
if state == 'batched' then
  -- The import ran before the batch's answer came back: the settle closes the gap.
  return {'confirmed', state, published}
end
local newest = tonumber(redis.call('HGET', rec, 'version') or '-1')
local held = tonumber(redis.call('HGET', rec, 'applied_version')
  or redis.call('HGET', rec, 'cut_version') or '-1')
if newest > held then
  set_state(rec, counts, 'queued')
  return {'release', state, published}
end
set_state(rec, counts, 'confirmed')
return {'confirmed', state, published}
