-- attempt: the owner message is about to send its batch; note when, so the sweep can tell a
-- live owner from a lost one.
-- KEYS: 1 batch
-- ARGV: 1 owner message id
-- Returns 1 when the batch is pending and ARGV[1]'s (the attempt is noted), else 0.
-- Invariant: checking the owner and noting the attempt are one step, and the sweep's re-own
-- (batches_reown.lua) changes the owner only if no attempt was noted since it looked, so a
-- batch is never sent by both its old and its new owner.

local batch, owner = KEYS[1], ARGV[1]
if redis.call('HGET', batch, 'state') ~= 'pending' then return 0 end
if redis.call('HGET', batch, 'owner') ~= owner then return 0 end
redis.call('HSET', batch, 'tried_ms', now_ms())
return 1
