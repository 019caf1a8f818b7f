-- reown: give a pending batch a new owner message, unless its owner tried to send it since
-- the caller looked.
-- KEYS: 1 batch
-- ARGV: 1 new owner message id, 2 the batch's 'tried_ms' as the caller saw it ('' for none)
-- Returns 1 when re-owned, else 0.
-- Invariant: see batches_attempt.lua; the new owner's silence is measured from now.

local batch, owner, seen = KEYS[1], ARGV[1], ARGV[2]
if redis.call('HGET', batch, 'state') ~= 'pending' then return 0 end
if (redis.call('HGET', batch, 'tried_ms') or '') ~= seen then return 0 end
redis.call('HSET', batch, 'owner', owner, 'enqueued', '0', 'tried_ms', now_ms())
return 1
