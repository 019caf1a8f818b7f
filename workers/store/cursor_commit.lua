-- pull_commit: one page of a pull, all or nothing.
-- KEYS: 1 cursor hash, 2 told index hash, 3 writeback stream
-- ARGV: 1 expected generation, 2 pull_by, 3 new cursor date, 4 new cursor id ('' = stay),
--       5 synced ms ('' = not caught up), 6..9 outcome counts (created, updated, echo, skipped),
--       10 entry count E, then E entries, each a field count N and N field/value strings,
--       then the told count T and T (virtuous id, told JSON) pairs, then the next sweep's
--       start (saved with the cursor).
-- Returns {'ok', new generation} or {'moved', current generation}.
-- Invariants: the cursor moves past a page only in the same atomic step that appends the
-- page's writeback entries and records them as told, so a crash re-reads at most the page in
-- flight and nothing is appended twice. The generation check refuses a page read before
-- another commit (a concurrent pull, a reset): its entries and told state may be stale.

local cursor, told, stream = KEYS[1], KEYS[2], KEYS[3]
local gen = redis.call('HGET', cursor, 'gen') or '0'
if gen ~= ARGV[1] then return {'moved', gen} end
local now = now_ms()

local i = 10
local entries = tonumber(ARGV[i])
i = i + 1
for _ = 1, entries do
  local n = tonumber(ARGV[i])
  local fields = {}
  for k = 1, n do fields[k] = ARGV[i + k] end
  fields[n + 1] = 'at_ms'
  fields[n + 2] = tostring(now)
  redis.call('XADD', stream, '*', unpack(fields))
  i = i + n + 1
end
local count = tonumber(ARGV[i])
i = i + 1
for _ = 1, count do
  redis.call('HSET', told, ARGV[i], ARGV[i + 1])
  i = i + 2
end

if ARGV[4] ~= '' then
  redis.call('HSET', cursor, 'by', ARGV[2], 'date', ARGV[3], 'id', ARGV[4], 'next', ARGV[i])
end
if ARGV[5] ~= '' then redis.call('HSET', cursor, 'synced_ms', ARGV[5]) end
local next_gen = tonumber(gen) + 1
redis.call('HSET', cursor, 'gen', next_gen, 'committed_ms', now)
local outcomes = {'created', 'updated', 'echo', 'skipped'}
for k, outcome in ipairs(outcomes) do
  local n = tonumber(ARGV[5 + k])
  if n > 0 then redis.call('HINCRBY', cursor, outcome, n) end
end
return {'ok', tostring(next_gen)}
