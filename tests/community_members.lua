-- Every member of a chunk of one partition's communities, in one reply (instead of one SMEMBERS
-- per community and role: their replies, not Redis, were the refresh's cost).
-- KEYS: the role sets to read, every one declared (all in the partition's hash slot)
-- ARGV: none
-- Returns, per key in order, the number of members followed by the members.
local out = {}
for i = 1, #KEYS do
  local members = redis.call('SMEMBERS', KEYS[i])
  out[#out + 1] = #members
  for j = 1, #members do out[#out + 1] = members[j] end
end
return out
