-- acquire: take `cost` call tokens for one tenant, or say how long until they free up.
-- KEYS: 1 state hash, 2 block key, 3 in-flight zset, 4 own-call log zset, 5 lookup log zset
--       (all one tenant's hash tag)
-- ARGV: 1 cap, 2 window s, 3 span s (window + guard), 4 reserve share, 5 lookup share,
--       6 is lookup (1|0), 7 cost, 8 in-flight ttl s, 9 now override ('' = Redis TIME; tests
--       only), 10 take a wake-up ticket when refused (1|0), 11 probe hold s, 12 hold s (how
--       long the highest foreign count seen is kept), 13 the ticket the caller holds (epoch s;
--       '' = none): a waiter back, early or late, with the ticket it was given keeps its place
-- Returns {granted 1|0, wait s, tokens left, now, the granted calls' log members when granted
--         or, when refused, 1|0: the wait is a place in the line}
-- Invariant: every grant is logged at its time; a grant at t needs the calls logged in
-- (t - span, t] plus `cost` to fit in cap - reserve - foreign, so no half-open interval of
-- length span ever holds more than the cap (lookups and pulls also fit their own log under
-- cap * share). A token comes back exactly when the call that spent it leaves the span.
-- A 429 block and the other integrations' spend only ever deny, never admit. A refusal
-- changes at most a wake-up ticket line, never a log.
-- Foreign spend: observe (limiter_observe.lua) keeps the latest count Virtuous revealed and the
-- highest one of the last `hold` seconds, each valid until its reset. While neither is valid
-- the limiter does not know what the others spend, so it probes: one call at a time (for at
-- most `probe` seconds each) until an answer says.
-- Tickets: a refused caller that will come back (a re-enqueued message) is told to wake when
-- the next token after the previous refused caller's frees, not at the same instant as every
-- other waiter. A ticket reserves nothing: a caller that never comes back wastes no token.

local state, block, inflight, log, llog = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local cap, window, span = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local reserve, share = tonumber(ARGV[4]), tonumber(ARGV[5])
local is_lookup, cost = ARGV[6] == '1', tonumber(ARGV[7])
local inflight_ttl = tonumber(ARGV[8])
local ticketed = ARGV[10] == '1'
local probe, hold = tonumber(ARGV[11]), tonumber(ARGV[12])
local held = tonumber(ARGV[13])

local now
if ARGV[9] ~= '' then
  now = tonumber(ARGV[9])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
-- Float round-off must not turn an exact wait into a refusal.
local EPS = 0.000001
local KEEP_MARGIN = 600
-- Waits are rounded up to the microsecond: sleeping exactly that long is enough.
local function f(x) return string.format('%.6f', math.ceil(x * 1000000) / 1000000) end
local function g(x) return string.format('%.17g', x) end

local st = redis.call('HMGET', state, 'limit', 'f1', 'f1_at', 'f1_until', 'f2', 'f2_until',
  'seq', 'wtat', 'lwtat', 'f2_at', 'rtt', 'wpos', 'lwpos', 'f1_lent', 'f2_lent')
-- How long calls take to be answered (a moving average kept by observe).
local rtt = tonumber(st[11]) or 0
-- The organisation's cap is the one Virtuous reports; giftsync's own may be set lower.
local org = tonumber(st[1])
if not (org and org >= 1) then org = cap end
local usable = math.max(1, math.min(cap, org - math.floor(org * reserve + EPS)))
if cost > usable then return redis.error_reply('cost ' .. cost .. ' exceeds the cap ' .. usable) end
cap = math.min(cap, org)
local lcap = math.max(1, math.floor(cap * share + EPS))
if is_lookup and cost > lcap then
  return redis.error_reply('cost ' .. cost .. ' exceeds the lookup cap ' .. lcap)
end

-- A call logged at s holds its token until s + span (1 us of float round-off forgiven).
local edge = g(now - span + EPS)
redis.call('ZREMRANGEBYSCORE', log, '-inf', edge)
local own = redis.call('ZCARD', log)
local function release(index)
  local entry = redis.call('ZRANGE', log, index - 1, index - 1, 'WITHSCORES')
  return tonumber(entry[2]) + span
end

-- What the other integrations spend, as the answers of the last window said (nil: unknown).
-- Fresh until the answer's reset; after it the count still holds what own calls leaving can
-- free, and a probe may look whether the others' calls have gone.
-- Calls a count lent to ours count as the others' again once they free their tokens
-- (limiter_prelude.lua).
local foreign, fresh, changes = nil, false, nil
local f1, f1_at, f1_until = widened(tonumber(st[2]), st[14], now), tonumber(st[3]),
  tonumber(st[4])
local f2, f2_until, f2_at = widened(tonumber(st[5]), st[15], now), tonumber(st[6]),
  tonumber(st[10])
if f2 and f2_at and f2_until and now < f2_at + window then
  foreign = f2
  fresh = f2_until > now
  if fresh and f2 > 0 then changes = f2_until end
  if f1 and f1_at and f1_until and f1 > f2 and now - f1_at <= hold and f1_until > now then
    foreign, fresh = f1, true
    changes = math.min(f1_at + hold, f1_until)
  end
end

-- Nil when a probe may go now; else how soon to look again. A probe's answer usually comes
-- within milliseconds: look again soon, not when the probe ages.
local function probe_wait()
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', g(now - inflight_ttl))
  local recent = redis.call('ZRANGEBYSCORE', inflight, g(now - probe), '+inf', 'WITHSCORES',
    'LIMIT', 0, 1)
  if #recent == 0 then return nil end
  local sent = tonumber(recent[2])
  -- Its answer is due about `rtt` after it went: look again then, and often after that.
  local step = probe / 10
  if rtt > 0 then
    local due = sent + rtt - now
    step = math.min(step, due > 0.005 and due or math.max(rtt / 4, 0.005))
  end
  return math.min(sent + probe - now, step)
end

local wait, left = 0, 0
local probing, refused = false, false
-- Refused for want of tokens (not only a 429 block): only then is the wake-up line spaced by
-- when tokens free.
local short = false
if foreign == nil then
  local pw = probe_wait()
  if pw then probing, refused, wait = true, true, pw end
end

local top = math.min(usable, org - math.floor(org * reserve + EPS) - (foreign or 0))
local avail = top - own
left = avail - cost
if avail < cost then
  local need = cost - avail
  if foreign and not fresh and need > own and own + cost <= usable then
    -- The count has lapsed and our own calls leaving would not make room: probe.
    local pw = probe_wait()
    if pw then probing, refused, wait = true, true, pw end
    left = 0
  else
    refused, short = true, true
    local until_own, until_change = math.huge, math.huge
    if need <= own then until_own = release(need) - now end
    if changes then until_change = math.max(changes - now, EPS) end
    if foreign and foreign > 0 then
      -- The others' count also holds our calls that reached Virtuous unanswered: each answer
      -- may lower it. Look again when the next answer is due, and often after that.
      redis.call('ZREMRANGEBYSCORE', inflight, '-inf', g(now - inflight_ttl))
      local oldest = redis.call('ZRANGE', inflight, 0, 0, 'WITHSCORES')
      if #oldest > 0 and rtt > 0 then
        local due = tonumber(oldest[2]) + rtt - now
        until_change = math.min(until_change, due > 0.005 and due or math.max(rtt / 4, 0.005))
      end
    end
    wait = math.max(wait, math.min(until_own, until_change))
    -- Nothing we know of frees up (a reserve leaving no room): look again in a span.
    if wait == math.huge then wait = span end
  end
end

if is_lookup then
  redis.call('ZREMRANGEBYSCORE', llog, '-inf', edge)
  local lown = redis.call('ZCARD', llog)
  local lavail = lcap - lown
  left = math.min(left, lavail - cost)
  if lavail < cost then
    refused, short = true, true
    local entry = redis.call('ZRANGE', llog, cost - lavail - 1, cost - lavail - 1, 'WITHSCORES')
    wait = math.max(wait, tonumber(entry[2]) + span - now)
  end
end

local blocked = redis.call('PTTL', block)
if blocked > 0 then
  refused = true
  wait = math.max(wait, blocked / 1000)
  left = -cost
end

if refused then
  -- A count that lapses right now is read again on the next look.
  wait = math.max(wait, 0.001)
  left = left + cost
  if ticketed and not probing then
    local ticket = now + wait
    local line = is_lookup and 'lwtat' or 'wtat'
    local last = tonumber(is_lookup and st[9] or st[8])
    -- The last ticket's place in the log: its call's entry, a span (or more) on. A ticket is
    -- that plus how late the call's answer will move it, so the next place is looked for from
    -- here, not from the ticket, lest calls answered within that lateness be skipped.
    local line_pos = is_lookup and 'lwpos' or 'wpos'
    local pos = tonumber(is_lookup and st[13] or st[12]) or last
    if pos and last and pos > last then pos = last end
    -- A call not answered yet frees its token a span after its answer: about `rtt` later.
    -- A caller a moment before a freeing (a waiter back a little early) waits for that one
    -- rather than joining the end of the line.
    local near = math.max(0.05, 2 * rtt)
    if held then
      -- A waiter back with its ticket keeps its place: it waits for its own turn (not a
      -- token freeing earlier, an earlier waiter's), or for the next freeing when its token
      -- frees later than its ticket said; it takes a token free right now, as anyone may.
      ticket = math.max(ticket, held)
      wait = ticket - now
    elseif short and last and last + EPS >= ticket and wait > near then
      -- Wake with the first token freeing after the previous waiter's.
      local key, size = log, math.max(1, top)
      if is_lookup then key, size = llog, lcap end
      -- More waiters than calls in the span wait on calls not made yet: each of those frees
      -- a span after the token it takes, so look for the next freeing a span (or more) back.
      ticket = nil
      for cycle = 0, 8 do
        local nxt = redis.call('ZRANGEBYSCORE', key, '(' .. g(pos - (cycle + 1) * span), '+inf',
          'WITHSCORES', 'LIMIT', 0, 1)
        if #nxt > 0 then
          local score = tonumber(nxt[2])
          local granted = tonumber(string.match(nxt[1], '^[^:]+'))
          -- Not answered yet: its answer, about `rtt` after its grant (once answers have
          -- said how long they take), will move it to a guard before the answer.
          local late = 0
          if granted and math.abs(granted - score) < 0.000002 and st[11] then
            late = rtt - (span - window)
          end
          pos = score + (cycle + 1) * span
          ticket = pos + late
          break
        end
      end
      if not ticket then pos = last + span / math.max(1, size) end
      ticket = math.max(ticket or pos, now + wait)
    else
      pos = ticket
    end
    if ticket > (last or 0) then
      redis.call('HSET', state, line, g(ticket), line_pos, g(math.min(pos, ticket)))
    end
    local life = math.ceil((ticket - now + 2 * span) * 1000)
    if redis.call('PTTL', state) < life then redis.call('PEXPIRE', state, life) end
    wait = ticket - now
  end
  -- The last element says whether the wait is a place in the line (a ticket to hold).
  return {0, f(wait), f(math.max(0, left)), f(now), (ticketed and not probing) and 1 or 0}
end

local seq = tonumber(st[7]) or 0
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', g(now - inflight_ttl))
local members = {}
for i = 1, cost do
  seq = seq + 1
  -- The time in the member keeps it unique even if the state (and seq) expired meanwhile.
  local member = f(now) .. ':' .. seq
  -- Calls granted together are logged a microsecond apart (each held that much longer), so
  -- no two entries tie and the waiters' line can tell them apart.
  local at = g(now + (i - 1) * 0.000001)
  redis.call('ZADD', log, at, member)
  redis.call('ZADD', inflight, at, member)
  if is_lookup then redis.call('ZADD', llog, at, member) end
  members[#members + 1] = member
end
redis.call('HSET', state, 'seq', seq)
-- Keys outlive their content by a margin (entries are pruned by time, not by expiry).
local keep = math.ceil((2 * span + KEEP_MARGIN) * 1000)
if redis.call('PTTL', state) < keep then redis.call('PEXPIRE', state, keep) end
redis.call('PEXPIRE', log, math.ceil((span + KEEP_MARGIN) * 1000))
if is_lookup then redis.call('PEXPIRE', llog, math.ceil((span + KEEP_MARGIN) * 1000)) end
redis.call('PEXPIRE', inflight, math.ceil(inflight_ttl * 1000))

-- The granted calls' names, so each answer can say which call it was (see observe).
return {1, f(0), f(math.max(0, left)), f(now), members}
