-- observe: fold one Virtuous answer's X-RateLimit-* headers into the tenant's limiter state.
-- KEYS: 1 state hash, 2 in-flight zset, 3 own-call log zset, 4 lookup log zset
-- ARGV: 1 remaining ('' = not sent), 2 reset (seconds from now, or an epoch when > 1e9;
--       '' = not sent), 3 limit ('' = not sent), 4 configured cap, 5 window s,
--       6 in-flight ttl s, 7 now override ('' = Redis TIME; tests only), 8 hold s,
--       9 the answered call's log member ('' = not known), 10 guard s
-- What it learns: the other integrations' calls in Virtuous's window, limit - remaining - our
-- own calls it had counted. Ours are those logged in the last window less the ones still in
-- flight (they may not have arrived yet): that can only overstate the others, never
-- understate them, so the limiter errs towards fewer calls. The count stays valid until the
-- answer's reset (whatever the reset means, some of the counted calls leave then) and never
-- longer than a window (every counted call has left by then). The highest count of the last
-- `hold` seconds is kept beside the latest: answers overtaking one another must not lower it.
-- Answered calls granted before the window are left to the others, but lent to the count
-- while they hold their tokens in our log (f1_lent, f2_lent: when each frees).
-- An answer without Remaining says nothing about the others: they are taken to spend nothing.

local state, inflight, log, llog = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local remaining, reset, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cap, window, inflight_ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local hold = tonumber(ARGV[8])

local now
if ARGV[7] ~= '' then
  now = tonumber(ARGV[7])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function g(x) return string.format('%.17g', x) end
-- How far past the window's start answered calls are checked for having arrived before it.
local EDGE_SECONDS = math.min(window / 4, 5)

-- This answer's own call is no longer in flight. Which call it was is known when the caller
-- says (the gate names the call it was granted); otherwise the oldest in flight stands for it,
-- as every in-flight call is counted the same.
local call, guard = ARGV[9], tonumber(ARGV[10]) or 0
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', g(now - inflight_ttl))
local popped = nil
if call ~= '' then
  local granted_at = redis.call('ZSCORE', inflight, call)
  if granted_at then
    redis.call('ZREM', inflight, call)
    popped = {call, granted_at}
  end
else
  local oldest = redis.call('ZPOPMIN', inflight)
  if oldest[1] then popped = oldest end
end
if popped then
  local granted = tonumber(popped[2])
  -- The call reached Virtuous by now, so Virtuous counts it until a window after now at most.
  -- Known to be this very call, its entry moves to now - guard, earlier than its grant if it
  -- was answered within the guard: a token frees a span after its entry, so this one frees
  -- exactly a window after the answer. (Never exactly at its grant: an answered entry must
  -- not look unanswered.) Stood in for by the oldest, the real one may still be on its way:
  -- the entry moves to now, and the guard stays.
  local held = now
  if call ~= '' then held = now - guard end
  if math.abs(held - granted) < 0.00001 then held = granted + 0.00001 end
  redis.call('ZADD', log, 'XX', g(held), popped[1])
  redis.call('ZADD', llog, 'XX', g(held), popped[1])
  -- How long calls take to be answered (a moving average), for wake-up tickets.
  local took = now - granted
  if took >= 0 and took < window then
    local old = tonumber(redis.call('HGET', state, 'rtt'))
    redis.call('HSET', state, 'rtt', g(old and (0.8 * old + 0.2 * took) or took))
  end
end
local pending = redis.call('ZCARD', inflight)

-- The others' count is read against the organisation's cap, the one Remaining is taken from.
if limit and limit >= 1 then
  cap = math.floor(limit)
  redis.call('HSET', state, 'limit', cap)
end

local foreign, ends = 0, now + window
-- When each call lent to the count (see below) frees its token in our log.
local lent = {}
if remaining then
  local edge = now - window
  -- An answered call is logged up to a guard before its answer: look that much further back.
  local from = edge - guard
  local own = redis.call('ZCOUNT', log, '(' .. g(from), '+inf')
  -- A call answered inside the window may have arrived before it, so Virtuous no longer
  -- counts it: counting it as ours would understate the others. Those granted before the
  -- window's start are not counted (a call arrives after its grant); only recent answers are
  -- looked at, which covers every answer slower than the span looked at only partly.
  local straddling = redis.call('ZRANGEBYSCORE', log, '(' .. g(from), g(edge + EDGE_SECONDS),
    'WITHSCORES')
  local frees = {}
  for i = 1, #straddling, 2 do
    local member, score = straddling[i], tonumber(straddling[i + 1])
    local granted = tonumber(string.match(member, '^[^:]+'))
    if granted and granted <= edge then
      own = own - 1
      if not redis.call('ZSCORE', inflight, member) then frees[#frees + 1] = score + window + guard end
    end
  end
  foreign = math.max(0, cap - math.floor(remaining) - math.max(0, own - pending))
  -- Such a call had arrived by its answer, though, and it holds its token in our log until a
  -- span after its entry: while it does, taking it for ours is safe either way (counted by
  -- Virtuous, it is counted once rather than twice; forgotten, our log makes up for it). So as
  -- many of them as the count holds are lent to it, each until it frees its token: acquire
  -- counts it as the others' from then on. The first to free are lent, so the count is whole
  -- again soonest.
  table.sort(frees)
  for i = 1, math.min(#frees, foreign) do lent[i] = g(frees[i]) end
  foreign = foreign - #lent
  if reset then
    local at = reset > 1000000000 and reset or now + reset
    ends = math.min(ends, at)
  end
end

local st = redis.call('HMGET', state, 'f1', 'f1_at', 'f1_until', 'f2', 'f2_until', 'f2_call',
  'f2_n', 'f1_lent', 'f2_lent')
-- A count's lent calls that have freed their tokens are the others' again (limiter_prelude.lua).
local f1, f1_at, f1_until = widened(tonumber(st[1]), st[8], now), tonumber(st[2]),
  tonumber(st[3])
local f2, f2_until = widened(tonumber(st[4]), st[9], now), tonumber(st[5])
-- The call this answer belongs to, when the caller named it: calls are ordered by their
-- grant, then by their number (members are "grant:seq").
local function order(member)
  local at, n = string.match(member or '', '^([^:]+):(%d+)$')
  if not at then return nil end
  return {tonumber(at), tonumber(n)}
end
local this = (call ~= '' and popped) and order(call) or nil
local latest = order(st[6])
-- Everyone's calls in Virtuous's window when it answered.
local counted = remaining and (cap - math.floor(remaining)) or -1
local lent_at = table.concat(lent, ',')
local fields = {'f2', foreign, 'f2_until', g(ends), 'f2_at', g(now), 'f2_lent', lent_at}
-- An answer that overtook a later call's answer (the latest count's) and for which Virtuous
-- counted fewer calls was counted before that call arrived: it cannot see that call, though
-- we count it as ours already, so it must not lower the latest count. If Virtuous counted as
-- many or more, the later call had arrived: its own count stands.
local overtaken = this and latest
  and (this[1] < latest[1] or (this[1] == latest[1] and this[2] < latest[2]))
local f2_n = tonumber(st[7]) or -1
if overtaken and f2 and foreign < f2 and counted < f2_n then
  fields = {}
elseif not overtaken then
  -- An overtaken answer's count may stand, but the latest call stays the later one: answers
  -- of calls granted between the two are overtaken too.
  for _, v in ipairs({'f2_call', this and call or '', 'f2_n', counted}) do
    table.insert(fields, v)
  end
end
local f1_valid = f1 and f1_at and f1_until and f1_until > now and now - f1_at <= hold
if not f1_valid or foreign >= f1 then
  table.insert(fields, 'f1'); table.insert(fields, foreign)
  table.insert(fields, 'f1_at'); table.insert(fields, g(now))
  table.insert(fields, 'f1_until'); table.insert(fields, g(ends))
  table.insert(fields, 'f1_lent'); table.insert(fields, lent_at)
end
if #fields > 0 then redis.call('HSET', state, unpack(fields)) end

-- Never shorten the state's life (it may hold a ticket line further out).
local keep = math.ceil((math.max(ends - now, 0) + 2 * window + 600) * 1000)
if redis.call('PTTL', state) < keep then redis.call('PEXPIRE', state, keep) end
return pending
