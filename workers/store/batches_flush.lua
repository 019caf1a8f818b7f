-- flush: move up to max entries of one tenant's buffer into a new batch, atomically.
-- KEYS: 1 buffer entries, 2 buffer order, 3 batch seq, 4 unsent batches, 5 state counts,
--       6 tenant batches, 7 buffered tenants
-- ARGV: 1 tenant, 2 key prefix, 3 max entries, 4 max wait ms, 5 force (1|0),
--       6 transactionSource, 7 import name prefix, 8 owner message id
-- Invariants: every buffered entry ends in exactly one batch (it leaves the buffer in the
-- same step that puts it in the batch, so a crash at any instruction outside this script
-- cannot lose it or put it in two); the request body is built once, here, and stored, so every
-- retry sends it byte for byte; the batch names the one message id allowed to send it.

local entries_key, order, seq, unsent, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local tenant_batches, tenants = KEYS[6], KEYS[7]
local tenant, prefix = ARGV[1], ARGV[2]
local max_entries, max_wait = tonumber(ARGV[3]), tonumber(ARGV[4])
local force, source, import_prefix, owner = ARGV[5], ARGV[6], ARGV[7], ARGV[8]

local n = redis.call('ZCARD', order)
if n == 0 then
  redis.call('SREM', tenants, tenant)
  return false
end
local now = now_ms()
if n < max_entries and force ~= '1' then
  local oldest = redis.call('ZRANGE', order, 0, 0, 'WITHSCORES')
  if tonumber(oldest[2]) > now - max_wait then return false end
end

local members = redis.call('ZRANGE', order, 0, max_entries - 1)
local batch_id = 'btch_' .. tenant .. '_' .. redis.call('INCR', seq)
local batch = prefix .. ':batch:' .. batch_id
-- The members are the buffer's first #members: each leaves the buffer as it enters the batch.
local body_entries = redis.call('HMGET', entries_key, unpack(members))
redis.call('RPUSH', batch .. ':entries', unpack(body_entries))
redis.call('RPUSH', batch .. ':members', unpack(members))
redis.call('HDEL', entries_key, unpack(members))
redis.call('ZREMRANGEBYRANK', order, 0, #members - 1)
defer_counts()
for _, mem in ipairs(members) do
  local rec = prefix .. ':rec:' .. tenant .. ':' .. mem
  local fields = redis.call('HMGET', rec, 'state', 'version')
  -- The version this batch carries: settling compares it with the newest wanted one.
  if state_change(rec, counts, 'batched', fields[1]) then
    redis.call('HSET', rec, 'batch_id', batch_id, 'cut_version', fields[2], 'state', 'batched')
  else
    redis.call('HSET', rec, 'batch_id', batch_id, 'cut_version', fields[2])
  end
  redis.call('HDEL', rec, 'pending_entry')
end
flush_counts()
if n == #members then redis.call('SREM', tenants, tenant) end

local import_name = import_prefix .. ' ' .. batch_id
local body = '{"transactionSource":' .. cjson.encode(source)
  .. ',"transactions":[' .. table.concat(body_entries, ',')
  .. '],"createImport":true,"importName":' .. cjson.encode(import_name) .. '}'
redis.call('HSET', batch, 'tenant', tenant, 'state', 'pending', 'count', #members,
  'created_ms', now, 'body', body, 'import_name', import_name, 'owner', owner,
  'source', source)
redis.call('ZADD', unsent, now, batch_id)
redis.call('ZADD', tenant_batches, now, batch_id)
return batch_id
