-- Read only: the profile and memberships of many users of one partition in one reply, for the
-- flag records' enrichment (one reply to parse instead of two per user).
-- KEYS: every key read (the users' profile buckets and membership hashes, one hash slot).
-- ARGV: 1 profile bucket prefix, 2 membership prefix, then pairs: bucket, user id.
-- Returns one string: per user, in order, the profile record ('' when none) followed by each
-- membership as "field\30value", joined by "\31"; users joined by "\29". Stored directory text
-- holds no control characters (directory.lua and the v1 contract refuse them).
if #ARGV < 2 or #ARGV % 2 ~= 0 then
  return redis.error_reply('enrich.lua: expects two prefixes and bucket, user pairs')
end
local declared = {}
for i = 1, #KEYS do declared[KEYS[i]] = true end
for i = 3, #ARGV, 2 do
  if not declared[ARGV[1] .. ARGV[i]] or not declared[ARGV[2] .. ARGV[i + 1]] then
    return redis.error_reply('enrich.lua: a key of pair ' .. ((i - 1) / 2) .. ' is not declared')
  end
end
local out = {}
for i = 3, #ARGV, 2 do
  local parts = {redis.call('HGET', ARGV[1] .. ARGV[i], ARGV[i + 1]) or ''}
  local memberships = redis.call('HGETALL', ARGV[2] .. ARGV[i + 1])
  for j = 1, #memberships, 2 do
    parts[#parts + 1] = memberships[j] .. '\30' .. memberships[j + 1]
  end
  out[#out + 1] = table.concat(parts, '\31')
end
return table.concat(out, '\29')
