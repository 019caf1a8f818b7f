-- records: expire the records of one tenant that have been at rest longer than the retention.
-- KEYS: 1 terminal index, 2 state counts, 3 quarantine set, 4 unconfirmed set, 5 review set,
--       6 recheck hash
-- ARGV: 1 record key prefix ('{prefix}:rec:{tenant}:'), 2 cutoff ms (terminal and unchanged
--       since before it: expire), 3 now ms, 4 most records to look at
-- Returns {expired, looked at again later, candidates read}.
-- Invariants: only a record in a TERMINAL state (see the prelude) that nothing changed since
-- the cutoff expires; anything else is put back in its place (a newer change restarts the
-- clock) or dropped from the index (it is not at rest). An expired record leaves a tombstone
-- under its own key: state 'expired' and every field but those that may hold personal data
-- (the event, the entry, reasons and errors) and a few timestamps (DROPPED), so every script
-- still decides on it as on the record it was: a replayed old event is still stale, a newer one still finds the
-- Gift it updates, a batch still in flight (a dead letter's, replayed later) still settles by
-- the version it carried, and a pull still knows the Gift as giftsync's. Its count moves to
-- 'expired' and it leaves every per-record index in the same step, so counts and indexes stay
-- exact.
local index, counts, quarantine, unconfirmed, review, recheck = KEYS[1], KEYS[2], KEYS[3],
  KEYS[4], KEYS[5], KEYS[6]
local rec_prefix, cutoff, now = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local due = redis.call('ZRANGEBYSCORE', index, '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[4]))
-- Dropped: what may hold personal data, and bookkeeping no script or reader decides on.
local DROPPED = {payload = true, pending_entry = true, reason = true, last_error = true,
  last_skip_reason = true, first_ms = true, updated_ms = true, submitted_ms = true,
  published_ms = true, confirmed_by = true}
local expired, later = 0, 0
for _, rec in ipairs(due) do
  local state = redis.call('HGET', rec, 'state')
  local updated = tonumber(redis.call('HGET', rec, 'updated_ms') or '0')
  if not state or not TERMINAL[state] then
    redis.call('ZREM', index, rec)
  elseif updated > cutoff then
    -- Changed without a state change (a skipped newer version kept on a confirmed gift).
    redis.call('ZADD', index, updated, rec)
    later = later + 1
  else
    local mem = string.sub(rec, string.len(rec_prefix) + 1)
    set_state(rec, counts, 'expired')
    -- Written anew rather than thinned out: a hash Redis once stored as a table (a long event)
    -- stays one, and a new small hash is a few times smaller.
    local fields = redis.call('HGETALL', rec)
    local kept = {'expired_ms', now}
    for i = 1, #fields, 2 do
      if not DROPPED[fields[i]] then
        kept[#kept + 1] = fields[i]
        kept[#kept + 1] = fields[i + 1]
      end
    end
    redis.call('DEL', rec)
    redis.call('HSET', rec, unpack(kept))
    redis.call('ZREM', quarantine, mem)
    redis.call('ZREM', unconfirmed, mem)
    redis.call('ZREM', review, mem)
    redis.call('HDEL', recheck, mem)
    expired = expired + 1
  end
end
return {expired, later, #due}
