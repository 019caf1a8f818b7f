-- observe: fold one Virtuous answer's X-RateLimit-* headers into the tenant's limiter state.
-- KEYS: 1 state hash, 2 in-flight zset
-- ARGV: 1 remaining ('' = not sent), 2 reset (seconds until reset, or an epoch when > 1e9;
--       '' = not sent), 3 limit ('' = not sent), 4 window s, 5 in-flight ttl s,
--       6 now override ('' = Redis TIME; tests only)
-- Invariant: until the reported reset, acquire grants at most `remaining` minus the calls that
-- were granted but not yet answered when this answer arrived (they may reach Virtuous after it
-- counted), and within one reset period a later answer can only lower that budget.

local state, inflight = KEYS[1], KEYS[2]
local remaining, reset, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window, inflight_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])

local now
if ARGV[6] ~= '' then
  now = tonumber(ARGV[6])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- This answer's own call is no longer in flight; FIFO is exact enough because every in-flight
-- call is counted the same, whichever one answered.
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', string.format('%.17g', now - inflight_ttl))
redis.call('ZPOPMIN', inflight)
local pending = redis.call('ZCARD', inflight)

local keep = 2 * window
if limit and limit >= 1 then
  redis.call('HSET', state, 'limit', math.floor(limit))
end

if remaining then
  local reset_at
  if reset == nil then
    reset_at = now + window
  elseif reset > 1000000000 then
    reset_at = reset
  else
    reset_at = now + reset
  end
  if reset_at > now then
    local left = math.max(0, math.floor(remaining) - pending)
    local st = redis.call('HMGET', state, 'ext_left', 'ext_reset_at')
    local old_left, old_at = tonumber(st[1]), tonumber(st[2])
    -- Same period (reset moved by at most the header's rounding, either way): answers may
    -- arrive out of order, so keep the lower budget and the later reset. A reset much earlier
    -- than the one held is another period (a short 429 burst's "0 left for 1 s"), never merged
    -- into the longer one: that would read as "0 left until the hour's reset" and stop the
    -- tenant for the whole window.
    local tolerance = math.min(1.0, 0.05 * window)
    if old_left and old_at and old_at > now and math.abs(reset_at - old_at) <= tolerance then
      left = math.min(left, old_left)
      reset_at = math.max(reset_at, old_at)
    end
    redis.call('HSET', state, 'ext_left', left, 'ext_reset_at', string.format('%.17g', reset_at))
    keep = math.max(keep, reset_at - now + window)
  end
end

-- Never shorten the state's life (it may hold a pacing TAT or a longer budget).
if redis.call('PTTL', state) < keep * 1000 then
  redis.call('PEXPIRE', state, math.ceil(keep * 1000))
end
return pending
