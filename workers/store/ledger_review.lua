-- review: a submitted gift is still not a Gift in Virtuous after the review deadline.
-- KEYS: 1 record, 2 state counts, 3 writeback stream, 4 unconfirmed set, 5 review set
-- ARGV: 1 tenant, 2 kind, 3 record id, 4 member
-- Invariant: only a record still waiting for confirmation moves, once (a newer change waiting
-- for the real id included: confirmation still releases it); it stays findable in the review
-- set (and its batch id names the Import Tool batch to open).
local rec, counts, stream, unconfirmed, review = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local tenant, kind, id, mem = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local state = redis.call('HGET', rec, 'state')
local waiting = state == 'submitted' or state == 'update_held'
  or (state == 'held' and redis.call('HEXISTS', rec, 'cut_version') == 1)
if not waiting then return 0 end
local now = now_ms()
set_state(rec, counts, 'needs_review')
redis.call('HSET', rec, 'reason', 'no Gift in Virtuous after the review deadline: open its ' ..
  'Import Tool batch (Match Needed / Update Needed)', 'updated_ms', now)
redis.call('ZREM', unconfirmed, mem)
redis.call('ZADD', review, now, mem)
writeback(stream, 'type', 'gift.needs_review', 'tenant', tenant, 'kind', kind, 'id', id,
  'batch_id', redis.call('HGET', rec, 'batch_id') or '', 'at_ms', now)
return 1
