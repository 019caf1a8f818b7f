-- settle: record Virtuous's answer for a whole batch, exactly once, and close each record's gap.
-- KEYS: 1 batch, 2 unsent batches, 3 state counts, 4 writeback stream, 5 quarantine set,
--       6 unconfirmed set, 7 buffer entries, 8 buffer order, 9 buffered tenants
-- ARGV: 1 key prefix, 2 outcome (submitted|quarantined), 3 reason, 4 owner message id
-- Returns {'settled', now ms, n, published ms of each submitted entry (n of them), members to
-- send now...} or {'already'|'not_owner', state}.
-- Invariants: a batch settles once (a second call finds it settled and changes nothing), so
-- every record's outcome is written to the ledger and appended to the writeback stream once.
-- Level-triggered: each record compares the version it wants with the version this batch
-- carried ('cut_version'); a newer change that arrived while the batch was in flight is never
-- lost: it waits for the real Gift id (an update or a zeroing by id), is sent now when that id
-- is already known, or goes out in a later batch when Virtuous refused the older version.

local batch, unsent, counts, stream, quarantine = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local unconfirmed, entries, order, tenants = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
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
local send_now = {}
defer_counts()
for _, mem in ipairs(members) do
  local rec = prefix .. ':rec:' .. tenant .. ':' .. mem
  local kind, id = string.match(mem, '^([^:]+):(.*)$')
  local fields = redis.call('HMGET', rec, 'version', 'cut_version', 'confirmed_ms',
    'published_ms', 'state')
  local newest = tonumber(fields[1] or '-1')
  local cut = fields[2] or tostring(newest)
  local newer = newest > tonumber(cut)
  local old_state = fields[5]
  if outcome == 'submitted' then
    local confirmed = fields[3]
    local new_state, new_reason = 'submitted', reason
    if newer and confirmed then
      new_state = 'queued'
      send_now[#send_now + 1] = mem
    elseif newer then
      new_state, new_reason = 'update_held', 'a newer change waits for the real Gift id'
    elseif confirmed then
      new_state = 'confirmed'
    end
    local changed = {'batch_id', batch_id, 'updated_ms', now, 'applied_version', cut,
      'submitted_ms', now, 'reason', new_reason}
    if not confirmed then
      changed[#changed + 1] = 'virtuous_id'
      changed[#changed + 1] = batch_id
      redis.call('ZADD', unconfirmed, 'NX', now, mem)
    end
    if state_change(rec, counts, new_state, old_state) then
      changed[#changed + 1] = 'state'
      changed[#changed + 1] = new_state
    end
    redis.call('HSET', rec, unpack(changed))
    redis.call('HDEL', rec, 'pending_entry')
    published[#published + 1] = fields[4] or '0'
    writeback(stream, 'type', 'gift.submitted', 'tenant', tenant, 'kind', kind, 'id', id,
      'virtuous_id', batch_id, 'batch_id', batch_id, 'version', cut, 'at_ms', now)
  else
    redis.call('HSET', rec, 'batch_id', batch_id, 'updated_ms', now, 'reason', reason,
      'last_error', reason, 'applied_version', cut)
    writeback(stream, 'type', 'gift.quarantined', 'tenant', tenant, 'kind', kind, 'id', id,
      'batch_id', batch_id, 'reason', reason, 'version', cut, 'at_ms', now)
    local corrected = redis.call('HGET', rec, 'pending_entry')
    if newer and corrected then
      -- Virtuous refused the older version and created nothing: the newest goes out anew.
      redis.call('HDEL', rec, 'pending_entry', 'cut_version')
      redis.call('HSET', entries, mem, corrected)
      redis.call('ZADD', order, 'NX', now, mem)
      redis.call('SADD', tenants, tenant)
      set_state(rec, counts, 'buffered', old_state)
    else
      redis.call('ZADD', quarantine, now, mem)
      set_state(rec, counts, 'quarantined', old_state)
    end
  end
end
flush_counts()
redis.call('HSET', batch, 'state', outcome, 'settled_ms', now, 'reason', reason)
redis.call('ZREM', unsent, batch_id)
local reply = {'settled', tostring(now), tostring(#published)}
for _, p in ipairs(published) do reply[#reply + 1] = p end
for _, m in ipairs(send_now) do reply[#reply + 1] = m end
return reply
