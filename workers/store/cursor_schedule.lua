-- pull_schedule: is this tenant's pull of this kind due, and free to enqueue?
-- KEYS: 1 due key (next due, Redis ms), 2 pending key (message id of the pull queued/running)
-- ARGV: 1 interval ms, 2 message id to enqueue, 3 pending lease ms
-- Returns {claimed, next_ms}: claimed is 1 when the caller must enqueue the message now, else 0;
-- next_ms is how long (Redis ms) no scheduler can claim this pull, so the caller need not ask
-- again before then (0 when a due pull waits on a pending one: ask again next pass).
-- Invariants: at most one pull per tenant and kind is queued or running (while its lease
-- lasts), however many schedulers tick; a due pull that finds one pending waits for it rather
-- than piling up; the first sight of a pull only starts its clock; the due time only ever moves
-- forward, by a claim, so a next_ms once given stays a safe time to skip asking.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local due = tonumber(redis.call('GET', KEYS[1]) or '')
if not due then
  redis.call('SET', KEYS[1], now + interval)
  return {0, interval}
end
if now < due then return {0, due - now} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 0} end
redis.call('SET', KEYS[1], now + interval)
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return {1, interval}
