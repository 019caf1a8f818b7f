-- Shared by limiter.lua and limiter_observe.lua (loaded before each).
-- A count of the others' spend may have taken for ours some calls Virtuous may no longer count
-- (see limiter_observe.lua): each only while it holds its token in our log. `frees` lists when
-- each of them frees it ('' or nil: none); from then on it is the others' again.
local function widened(value, frees, now)
  if not value or not frees then return value end
  for at in string.gmatch(frees, '[^,]+') do
    if now >= tonumber(at) - 0.000001 then value = value + 1 end
  end
  return value
end
