-- settle: record Virtuous's answer for a whole batch, exactly once.
-- KEYS: 1 batch, 2 unsent batches, 3 state counts, 4 writeback stream, 5 quarantine set,
--       6 unconfirmed set
-- ARGV: 1 key prefix, 2 outcome (submitted|quarantined), 3 reason, 4 owner message id
-- Returns {'settled', now ms, published ms of each submitted entry...} or {'already'|'not_owner', state}.
-- Invariants: a batch settles once (a second call finds it settled and changes nothing), so
-- every record's outcome is written to the ledger and appended to the writeback stream once.

local batch, unsent, counts, stream, quarantine = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local unconfirmed = KEYS[6]
local prefix, outcome, reason, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local state = redis.call('HGET', batch, 'state')
if state ~= 'pending' then return {'already', state or 'missing'} end
if owner ~= '' and redis.call('HGET', batch, 'owner') ~= owner then
  return {'not_owner', state}
end
local tenant = redis.call('HGET', batch, 'tenant')
local batch_id = string.sub(batch, string.len(prefix .. ':batch:') + 1)
local members = redis.call('LRANGE', batch .. ':members', 0, -1)
local now = now_ms()
local published = {}
for _, mem in ipairs(members) do
  local rec = prefix .. ':rec:' .. tenant .. ':' .. mem
  local kind, id = string.match(mem, '^([^:]+):(.*)$')
  set_state(rec, counts, outcome)
  redis.call('HSET', rec, 'batch_id', batch_id, 'updated_ms', now)
  if outcome == 'submitted' then
    redis.call('HSET', rec, 'virtuous_id', batch_id, 'submitted_ms', now, 'reason', reason)
    published[#published + 1] = redis.call('HGET', rec, 'published_ms') or '0'
    redis.call('ZADD', unconfirmed, 'NX', now, mem)
    writeback(stream, 'type', 'gift.submitted', 'tenant', tenant, 'kind', kind, 'id', id,
      'virtuous_id', batch_id, 'batch_id', batch_id, 'version',
      redis.call('HGET', rec, 'version') or '', 'at_ms', now)
  else
    redis.call('HSET', rec, 'reason', reason, 'last_error', reason)
    redis.call('ZADD', quarantine, now, mem)
    writeback(stream, 'type', 'gift.quarantined', 'tenant', tenant, 'kind', kind, 'id', id,
      'batch_id', batch_id, 'reason', reason, 'version',
      redis.call('HGET', rec, 'version') or '', 'at_ms', now)
  end
end
redis.call('HSET', batch, 'state', outcome, 'settled_ms', now, 'reason', reason)
redis.call('ZREM', unsent, batch_id)
return {'settled', tostring(now), unpack(published)}
