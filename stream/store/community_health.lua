-- Community health of a chunk of one partition's communities, counted in the partition's health
-- index (fold.lua's "community health" section says what it holds): no member is read.
-- KEYS: 1 the health index, then per community its owner, member and follower sets (all in the
--       partition's hash slot)
-- ARGV: 1 active since (last event time, 15 digits zero-padded), 2 owners active since (the
--       same), then the communities, in the order of their KEYS
-- Returns, per community: owners, members, followers, people, active people, active owners.
-- Reads only: O(log n) a community (ZLEXCOUNT), whatever its members.
if #ARGV < 2 or #KEYS ~= 1 + 3 * (#ARGV - 2) then
  return redis.error_reply('community_health.lua: expects 1 + 3 keys a community, got '
    .. #KEYS .. ' keys for ' .. (#ARGV - 2) .. ' communities')
end
local since, owners_since = ARGV[1], ARGV[2]
if not string.match(since, '^%d+$') or not string.match(owners_since, '^%d+$') then
  return redis.error_reply('community_health.lua: ARGV[1] and ARGV[2] must be digits')
end
local health, out = KEYS[1], {}
for index = 3, #ARGV do
  local community, at = ARGV[index], 3 * (index - 3) + 1
  for role = 1, 3 do out[#out + 1] = redis.call('SCARD', KEYS[at + role]) end
  local people = 'a\t' .. community .. '\t'
  local owners = 'o\t' .. community .. '\t'
  out[#out + 1] = redis.call('ZLEXCOUNT', health, '[' .. people, '[' .. people .. '\255')
  out[#out + 1] = redis.call('ZLEXCOUNT', health, '[' .. people .. since, '[' .. people .. '\255')
  out[#out + 1] = redis.call('ZLEXCOUNT', health, '[' .. owners .. owners_since,
    '[' .. owners .. '\255')
end
return out
