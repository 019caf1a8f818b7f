-- block: stop every worker from calling Virtuous for one tenant for ARGV[1] milliseconds.
-- KEYS: 1 block key
-- Invariant: a block only ever lengthens; two workers answering with different Retry-After
-- values leave the later deadline in force. Expiry is Redis's own clock.

local ms = tonumber(ARGV[1])
if ms <= 0 then return redis.call('PTTL', KEYS[1]) end
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return redis.call('PTTL', KEYS[1])
