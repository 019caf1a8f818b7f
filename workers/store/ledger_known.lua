-- known: the id each record is known by in Virtuous, read for a whole chunk in one call.
-- KEYS: record keys
-- Returns per record: its Gift id; else its batch id once the record is handed over (a
-- refund of a gift on its way is a refund of a batch gift); else ''.
local HANDED_OVER = {
  batched = true, submitted = true, needs_review = true, update_held = true, held = true,
  dead = true,
}
local known = {}
for i, rec in ipairs(KEYS) do
  local fields = redis.call('HMGET', rec, 'virtuous_id', 'batch_id', 'state')
  if fields[1] and fields[1] ~= '' then
    known[i] = fields[1]
  elseif fields[2] and fields[2] ~= '' and fields[3] and HANDED_OVER[fields[3]] then
    known[i] = fields[2]
  else
    known[i] = ''
  end
end
return known
