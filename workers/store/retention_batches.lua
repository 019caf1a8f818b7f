-- batches: delete one tenant's batches settled longer ago than the retention.
-- KEYS: 1 tenant batches
-- ARGV: 1 key prefix, 2 tenant, 3 cutoff ms, 4 offset into the batches created before the
--       cutoff (those kept by earlier calls of this pass), 5 most batches to look at
-- Returns {deleted, kept, candidates read}.
-- Invariants: a pending batch (unsent, or dead and waiting for a replay) is never touched. A
-- batch settled before the cutoff loses its body and entries (every donor's details) at once;
-- its small remainder (import name, members) is deleted too unless one of its records still
-- needs it: a record not at rest whose batch it still is (needs_review names the Import Tool
-- batch to open through it).
local tenant_batches = KEYS[1]
local prefix, tenant, cutoff = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', tenant_batches, '-inf', cutoff, 'LIMIT',
  tonumber(ARGV[4]), tonumber(ARGV[5]))
local deleted, kept = 0, 0
for _, batch_id in ipairs(ids) do
  local batch = prefix .. ':batch:' .. batch_id
  local state = redis.call('HGET', batch, 'state')
  local settled = tonumber(redis.call('HGET', batch, 'settled_ms') or '0')
  if state == 'pending' or (state and settled > cutoff) then
    kept = kept + 1
  else
    redis.call('DEL', batch .. ':entries')
    redis.call('HDEL', batch, 'body')
    local needed = false
    for _, mem in ipairs(redis.call('LRANGE', batch .. ':members', 0, -1)) do
      local rec = prefix .. ':rec:' .. tenant .. ':' .. mem
      local rec_state = redis.call('HGET', rec, 'state')
      if rec_state and not TERMINAL[rec_state] and rec_state ~= 'expired'
          and redis.call('HGET', rec, 'batch_id') == batch_id then
        needed = true
        break
      end
    end
    if needed then
      kept = kept + 1
    else
      redis.call('DEL', batch, batch .. ':members')
      redis.call('ZREM', tenant_batches, batch_id)
      deleted = deleted + 1
    end
  end
end
return {deleted, kept, #ids}
