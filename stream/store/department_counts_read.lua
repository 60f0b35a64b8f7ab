-- One partition's department counts as one string of "field\tvalue" lines: a hash of thousands
-- of departments comes back as one reply instead of two bulk strings a field (decoding those was
-- most of a read's cost).
-- KEYS: 1 the department counts hash
-- ARGV: none
local flat = redis.call('HGETALL', KEYS[1])
local lines = {}
for i = 1, #flat, 2 do
  lines[#lines + 1] = flat[i] .. '\t' .. flat[i + 1]
end
return table.concat(lines, '\n')
