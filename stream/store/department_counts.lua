-- Count one partition's department figures from scratch: what release.lua and directory.lua
-- then keep up to date with each change. Run once per partition whose counts hash has no
-- "built" field (state written before the counts existed, or a new partition), atomically, so
-- no change falls between the count and the first update.
-- KEYS: 1 the department counts hash, 2 the inactivity states hash, then every profile bucket
-- ARGV: none
-- The hash: "<department>\t<figure>" -> users with an enabled profile of that department
-- (department '' when the profile names none) that are: enabled (all of them), active (a state
-- that has seen them and holds no flag), inactive (flagged at one threshold or more),
-- never_active, at_risk (holding the at-risk flag); and "built" -> 1.
if #KEYS < 2 or #ARGV ~= 0 then
  return redis.error_reply('department_counts.lua: expects at least 2 keys and no argument')
end
local counts, states = KEYS[1], KEYS[2]
local totals = {}
local function add(department, figure)
  local field = department .. '\t' .. figure
  totals[field] = (totals[field] or 0) + 1
end
for i = 3, #KEYS do
  local profiles = redis.call('HGETALL', KEYS[i])
  for j = 1, #profiles, 2 do
    local department = string.match(profiles[j + 1], '^[^\t]*\tenabled\t[^\t]*\t([^\t]*)\t')
    if department then
      add(department, 'enabled')
      local raw = redis.call('HGET', states, profiles[j])
      local last, flagged, never
      if raw then
        last, flagged, never = string.match(raw, '^[^|]*|[^|]*|[01]|(%-?%d*)|(%d+)|([01])|')
      end
      if last then
        if tonumber(flagged) > 0 then add(department, 'inactive') end
        if never == '1' then add(department, 'never_active') end
        if last ~= '' and tonumber(flagged) == 0 and never ~= '1' then add(department, 'active') end
        if string.match(raw, '^[^|]*|[^|]*|[01]|[^|]*|%d+|[01]|[^|]*|%-?%d+|') then
          add(department, 'at_risk')
        end
      end
    end
  end
end
redis.call('DEL', counts)
for field, value in pairs(totals) do
  redis.call('HSET', counts, field, value)
end
redis.call('HSET', counts, 'built', 1)
return 1
