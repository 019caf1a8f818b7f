-- acquire: take `cost` call tokens for one tenant, or say how long until they free up.
-- KEYS: 1 state hash, 2 block key, 3 in-flight zset, 4 call-count hash (all one tenant's hash tag)
-- ARGV: 1 cap, 2 window s, 3 configured burst, 4 lookup share, 5 is lookup (1|0), 6 cost,
--       7 max burst share, 8 guard share, 9 guard max s, 10 count slots, 11 in-flight ttl s,
--       12 now override ('' = Redis TIME; tests only), 13 take a wake-up ticket when refused (1|0),
--       14 guard min s, 15 guard override s ('' = derive from the window)
-- Invariant: with span = window + guard, T = span / (cap - B + 1) and tolerance B*T, the tokens
-- granted in every half-open interval of length span total at most cap (the proof is in
-- limiter.py); lookups/pulls also pass a second bucket of the same shape sized cap * share.
-- A 429 block or a budget Virtuous reported only ever deny, never admit. A grant changes the
-- buckets; a refusal changes at most a wake-up ticket line ('wtat' for pushes, 'lwtat' for
-- lookups and pulls, each spaced by its own bucket's interval), never a bucket.
-- Tickets: a refused caller that will come back later (a re-enqueued message) is told to wake
-- one emission interval after the previous refused caller, not at the same instant as every
-- other waiter, so a backlog of throttled messages wakes one per free token instead of all
-- together (each wake-up costs a queue round trip). A ticket reserves nothing: a caller that
-- never comes back wastes no token.

local state, block, inflight, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cap, window, burst_cfg = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local share, is_lookup, cost = tonumber(ARGV[4]), ARGV[5] == '1', tonumber(ARGV[6])
local burst_share, guard_share, guard_max = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local slots, inflight_ttl = tonumber(ARGV[10]), tonumber(ARGV[11])

local now
if ARGV[12] ~= '' then
  now = tonumber(ARGV[12])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
-- Float round-off must not turn an exact wait into a refusal; 1 us is far below the guard.
local EPS = 0.000001

local st = redis.call('HMGET', state, 'tat', 'ltat', 'limit', 'ext_left', 'ext_reset_at', 'seq',
  'wtat', 'lwtat')
local ticketed = ARGV[13] == '1'
local limit = tonumber(st[3])
if limit and limit >= 1 and limit < cap then cap = limit end

local guard_min = tonumber(ARGV[14])
local guard = math.min(math.max(window * guard_share, guard_min), guard_max)
if ARGV[15] ~= '' then guard = tonumber(ARGV[15]) end
local span = window + guard
local function pacing(c)
  -- Burst (B-1)*T absorbs the lateness of callers re-enqueued to the moment a token frees;
  -- each token beyond the first costs a call per window, so beyond 2 it is held to a share.
  local b = math.max(1, math.min(burst_cfg, c, math.max(2, math.floor(c * burst_share))))
  return span / (c - b + 1), b
end

-- One GCRA bucket: the wait before `cost` tokens conform, the TAT after taking them, and the
-- tokens (fractional) left after taking them.
local function bucket(tat, period, b)
  local base = math.max(tat or 0, now)
  local new_tat = base + cost * period
  local wait = new_tat - b * period - now
  if wait <= EPS then wait = 0 end
  return wait, new_tat, (b * period - (new_tat - now)) / period
end

local period, b = pacing(cap)
if cost > b then return redis.error_reply('cost ' .. cost .. ' exceeds the burst ' .. b) end
local wait, tat, left = bucket(tonumber(st[1]), period, b)

local ltat
local ticket_period = period
if is_lookup then
  local lperiod, lb = pacing(math.max(1, math.floor(cap * share)))
  if cost > lb then return redis.error_reply('cost ' .. cost .. ' exceeds the lookup burst ' .. lb) end
  local lwait, lleft
  lwait, ltat, lleft = bucket(tonumber(st[2]), lperiod, lb)
  wait = math.max(wait, lwait)
  left = math.min(left, lleft)
  ticket_period = math.max(period, lperiod)
end

-- The budget Virtuous last reported, net of calls in flight then, holds until its reset.
local ext_left, ext_at = tonumber(st[4]), tonumber(st[5])
local ext_active = ext_left ~= nil and ext_at ~= nil and ext_at > now
if ext_active then
  if ext_left < cost then wait = math.max(wait, ext_at - now) end
  left = math.min(left, ext_left - cost)
end

local blocked = redis.call('PTTL', block)
if blocked > 0 then
  wait = math.max(wait, blocked / 1000)
  left = -cost
end

local function f(x) return string.format('%.6f', x) end

if wait > 0 then
  left = left + cost
  if ticketed then
    local ticket = now + wait
    -- Lookups queue on their own line: their longer interval must not push pushes back.
    local line = is_lookup and 'lwtat' or 'wtat'
    local last = tonumber(is_lookup and st[8] or st[7])
    if last and last + ticket_period * cost > ticket then ticket = last + ticket_period * cost end
    redis.call('HSET', state, line, string.format('%.17g', ticket))
    redis.call('PEXPIRE', state, math.ceil((ticket - now + span + window) * 1000))
    wait = ticket - now
  end
  return {0, f(wait), f(math.max(0, left)), f(now)}
end

local fields = {'tat', string.format('%.17g', tat)}
if ltat then table.insert(fields, 'ltat'); table.insert(fields, string.format('%.17g', ltat)) end
if ext_active then table.insert(fields, 'ext_left'); table.insert(fields, ext_left - cost) end
redis.call('HSET', state, unpack(fields))
local keep = math.max(span, ext_active and (ext_at - now) or 0) + window
redis.call('PEXPIRE', state, math.ceil(keep * 1000))

-- Each granted call is in flight until an answer is observed (observe pops the oldest).
local seq = tonumber(st[6]) or 0
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', string.format('%.17g', now - inflight_ttl))
for _ = 1, cost do
  seq = seq + 1
  redis.call('ZADD', inflight, string.format('%.17g', now), seq)
end
redis.call('HSET', state, 'seq', seq)
redis.call('PEXPIRE', inflight, math.ceil(inflight_ttl * 1000))

-- Calls per slot of window/slots seconds, for calls_in_window(); old slots are pruned.
local width = window / slots
local slot = math.floor(now / width)
redis.call('HINCRBY', counts, slot, cost)
if redis.call('HLEN', counts) > slots + 2 then
  for _, k in ipairs(redis.call('HKEYS', counts)) do
    if tonumber(k) <= slot - slots - 1 then redis.call('HDEL', counts, k) end
  end
end
redis.call('PEXPIRE', counts, math.ceil(2 * window * 1000))

return {1, f(0), f(math.max(0, left)), f(now)}
