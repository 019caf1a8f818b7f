-- confirm: the real Gift id of a record handed to Virtuous is known (webhook or lookup).
-- KEYS: 1 record, 2 state counts, 3 writeback stream, 4 unconfirmed set, 5 review set,
--       6 recheck hash
-- ARGV: 1 Gift id, 2 source (webhook|lookup), 3 tenant, 4 kind, 5 record id, 6 member
-- Returns {outcome, previous state, published ms}; outcome is unknown | already | confirmed |
-- release (a refund or update waited for this id: the caller sends it now).
-- Invariants: a record is confirmed once (a duplicate or late delivery finds it confirmed and
-- changes nothing), and the writeback entry is written in the same step as the ledger change.
local rec, counts, stream, unconfirmed, review, recheck = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
  KEYS[5], KEYS[6]
local gift_id, source, tenant, kind, id, mem = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  ARGV[6]

local state = redis.call('HGET', rec, 'state')
if not state then return {'unknown', '', '0'} end
local published = redis.call('HGET', rec, 'published_ms') or '0'
if redis.call('HGET', rec, 'confirmed_ms') or state == 'sent' or state == 'queued' then
  return {'already', state, published}
end
local now = now_ms()
redis.call('HSET', rec, 'virtuous_id', gift_id, 'confirmed_ms', now, 'confirmed_by', source)
redis.call('ZREM', unconfirmed, mem)
redis.call('ZREM', review, mem)
redis.call('HDEL', recheck, mem)
writeback(stream, 'type', 'gift.confirmed', 'tenant', tenant, 'kind', kind, 'id', id,
  'virtuous_id', gift_id, 'batch_id', redis.call('HGET', rec, 'batch_id') or '',
  'source', source, 'at_ms', now)
if state == 'held' or state == 'update_held' then
  set_state(rec, counts, 'queued')
  return {'release', state, published}
end
set_state(rec, counts, 'confirmed')
return {'confirmed', state, published}
