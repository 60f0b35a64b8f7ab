-- Community health of one partition at an instant: role counts, and active people and owners
-- counted as of that instant (fold.lua's section "health" says what the keys hold).
-- KEYS: 1 role counts, 2 active counts, 3 active people, 4 active owners (one hash slot)
-- ARGV: 1 the instant (ms), 2 the community window (ms), 3 the owners' window (ms)
-- The active counts are kept as of the instant in their field "\tasof" by the fold and the
-- directory; this call moves them to ARGV[1]: only the people whose last event lies between
-- the two window starts are read (O(changes) between two reads, either way in time). Counts of
-- other windows, or none yet (the first read of a partition), are counted from scratch: every
-- active entry once, in this atomic call, so no fold falls between the count and its updates.
-- Returns {"community\towners,members,followers,people\n...", "community\tactive,owners\n..."}.
local function whole(value) return value and string.match(value, '^%-?%d+$') and tonumber(value) end
local now, window, owners_window = whole(ARGV[1]), whole(ARGV[2]), whole(ARGV[3])
if #KEYS ~= 4 or not now or not window or not owners_window or window < 0
  or owners_window < 0 then
  return redis.error_reply('community_health.lua: expects 4 keys and the instant and two '
    .. 'windows in ms, got ' .. #KEYS .. ' keys and ' .. table.concat(ARGV, ' '))
end
local counts, sets, windows = KEYS[2], {KEYS[3], KEYS[4]}, {window, owners_window}
local meta = redis.call('HMGET', counts, '\tasof', '\tw', '\tt')
local asof = whole(meta[1])
local rebuilt = not asof or whole(meta[2]) ~= window or whole(meta[3]) ~= owners_window
local moved = {}  -- community -> {people, owners}
local function ms(value) return string.format('%d', value) end
local function count(which, members, sign)
  for _, member in ipairs(members) do
    local community = string.match(member, '^([^\t]+)\t')
    local m = moved[community] or {0, 0}
    m[which] = m[which] + sign
    moved[community] = m
  end
end
for which = 1, 2 do
  local from = now - windows[which]
  if rebuilt then
    count(which, redis.call('ZRANGEBYSCORE', sets[which], ms(from), '+inf'), 1)
  else
    local was = asof - windows[which]
    if from > was then  -- later: who was last seen in [was, from) has left the window
      count(which, redis.call('ZRANGEBYSCORE', sets[which], ms(was), '(' .. ms(from)), -1)
    elseif from < was then  -- earlier: who was last seen in [from, was) is in it again
      count(which, redis.call('ZRANGEBYSCORE', sets[which], ms(from), '(' .. ms(was)), 1)
    end
  end
end
if rebuilt then redis.call('DEL', counts) end
local names = {}
for community in pairs(moved) do names[#names + 1] = community end
if #names > 0 then
  local held = {}
  for start = 1, #names, 4000 do  -- unpack() is bounded by Lua's C stack
    local reply = redis.call('HMGET', counts, unpack(names, start, math.min(start + 3999, #names)))
    for _, value in ipairs(reply) do held[#held + 1] = value end
  end
  for index, community in ipairs(names) do
    local values = {0, 0}
    if held[index] then
      local a, o = string.match(held[index], '^(%d+),(%d+)$')
      values = {tonumber(a), tonumber(o)}
    end
    local m = moved[community]
    values = {values[1] + m[1], values[2] + m[2]}
    if values[1] + values[2] == 0 then redis.call('HDEL', counts, community)
    else redis.call('HSET', counts, community, values[1] .. ',' .. values[2]) end
  end
end
redis.call('HSET', counts, '\tasof', ms(now), '\tw', ms(window), '\tt', ms(owners_window))
local function lines(hash)
  local flat, out = redis.call('HGETALL', hash), {}
  for index = 1, #flat, 2 do
    if string.sub(flat[index], 1, 1) ~= '\t' then
      out[#out + 1] = flat[index] .. '\t' .. flat[index + 1]
    end
  end
  return table.concat(out, '\n')
end
return {lines(KEYS[1]), lines(counts)}
