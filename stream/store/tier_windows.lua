-- Users of one partition in windows of days: the OR of the windows' day bitmaps, counted.
-- KEYS: 1 a scratch key of the partition (deleted before returning), 2.. the day bitmaps of one
--       tier, newest day first (a day nobody was active on has no key: it counts as empty).
-- ARGV: window lengths in days, ascending, each at most #KEYS - 1.
-- Returns one count per window. The bitmaps are OR-ed here (BITOP, in C) rather than sent to
-- the reader: a 30-day window of 200,000 users is 30 bitmaps of ~2 KB a partition, and only
-- the counts need to travel.
local days = #KEYS - 1
local out, merged = {}, 0
for index = 1, #ARGV do
  local length = tonumber(ARGV[index])
  if not length or length < 1 or length > days or length < merged then
    return redis.error_reply('tier_windows.lua: bad window ' .. tostring(ARGV[index]))
  end
  if length == 1 then
    out[index] = redis.call('BITCOUNT', KEYS[2])
  else
    if merged == 0 then
      redis.call('BITOP', 'OR', KEYS[1], unpack(KEYS, 2, length + 1))
    elseif length > merged then
      redis.call('BITOP', 'OR', KEYS[1], KEYS[1], unpack(KEYS, merged + 2, length + 1))
    end
    merged = length
    out[index] = redis.call('BITCOUNT', KEYS[1])
  end
end
redis.call('DEL', KEYS[1])
return out
