-- applied: record that one stored version of a record reached Virtuous through a direct call.
-- KEYS: 1 record, 2 state counts, 3 writeback stream
-- ARGV: 1 applied version, 2 state, 3 virtuous id ('' to keep), 4 writeback type, 5 tenant,
--       6 kind, 7 record id, 8 reason
-- Returns the record's newest version, so the caller knows whether a newer one still waits.
-- Invariants: applied_version only grows, and the writeback entry is written in the same step
-- as the ledger change, so the platform hears of each applied version exactly once.
local rec, counts, stream = KEYS[1], KEYS[2], KEYS[3]
local applied, state, vid, wb_type = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local tenant, kind, id, reason = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local previous = tonumber(redis.call('HGET', rec, 'applied_version') or '-1')
local newest = redis.call('HGET', rec, 'version') or '-1'
if tonumber(applied) <= previous then return newest end
local now = now_ms()
redis.call('HSET', rec, 'applied_version', applied, 'updated_ms', now, 'reason', reason)
redis.call('HDEL', rec, 'create_attempted')
if vid ~= '' then redis.call('HSET', rec, 'virtuous_id', vid) end
if state == 'sent' and not redis.call('HGET', rec, 'submitted_ms') then
  redis.call('HSET', rec, 'submitted_ms', now)
end
set_state(rec, counts, state)
writeback(stream, 'type', wb_type, 'tenant', tenant, 'kind', kind, 'id', id,
  'virtuous_id', redis.call('HGET', rec, 'virtuous_id') or '', 'version', applied,
  'reason', reason, 'at_ms', now)
return newest
