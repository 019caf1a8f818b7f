-- split: replace a rejected batch by its two halves, each a new pending batch.
-- KEYS: 1 batch, 2 unsent batches, 3 tenant batches, 4 state counts
-- ARGV: 1 key prefix, 2 owner message id of the rejected batch, 3 owner id for the first
--       half, 4 owner id for the second half
-- Invariants: every entry of the parent ends in exactly one child; the parent is settled as
-- 'split' in the same step, so a retry of the parent's message finds nothing to do; each
-- child's body is built here once, so its retries are byte for byte the same; each child is
-- an Import Tool import of its own name (the parent's plus ".1" or ".2", like its id), so
-- staff can tell the pieces of a split batch apart in Virtuous.

local batch, unsent, tenant_batches, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, owner, owner_a, owner_b = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if redis.call('HGET', batch, 'state') ~= 'pending' then return false end
if owner ~= '' and redis.call('HGET', batch, 'owner') ~= owner then return false end
local tenant = redis.call('HGET', batch, 'tenant')
local source = redis.call('HGET', batch, 'source')
local import_name = redis.call('HGET', batch, 'import_name')
local batch_id = string.sub(batch, string.len(prefix .. ':batch:') + 1)
local entries = redis.call('LRANGE', batch .. ':entries', 0, -1)
local members = redis.call('LRANGE', batch .. ':members', 0, -1)
local n = #members
if n < 2 then return false end
local half = math.floor(n / 2)
local now = now_ms()
local children = {}
local ranges = {{1, half, '.1', owner_a}, {half + 1, n, '.2', owner_b}}
for _, range in ipairs(ranges) do
  local first, last, suffix, child_owner = range[1], range[2], range[3], range[4]
  local child_id = batch_id .. suffix
  local child_import = import_name .. suffix
  local child = prefix .. ':batch:' .. child_id
  local body_entries = {}
  for i = first, last do
    body_entries[#body_entries + 1] = entries[i]
    redis.call('RPUSH', child .. ':entries', entries[i])
    redis.call('RPUSH', child .. ':members', members[i])
    redis.call('HSET', prefix .. ':rec:' .. tenant .. ':' .. members[i], 'batch_id', child_id)
  end
  local body = '{"transactionSource":' .. cjson.encode(source)
    .. ',"transactions":[' .. table.concat(body_entries, ',')
    .. '],"createImport":true,"importName":' .. cjson.encode(child_import) .. '}'
  redis.call('HSET', child, 'tenant', tenant, 'state', 'pending', 'count', last - first + 1,
    'created_ms', now, 'body', body, 'import_name', child_import, 'owner', child_owner,
    'source', source, 'parent', batch_id)
  redis.call('ZADD', unsent, now, child_id)
  redis.call('ZADD', tenant_batches, now, child_id)
  children[#children + 1] = child_id
end
redis.call('HSET', batch, 'state', 'split', 'settled_ms', now)
redis.call('ZREM', unsent, batch_id)
return children
