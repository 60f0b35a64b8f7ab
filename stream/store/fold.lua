-- Apply one partition batch's fold and advance its offset fence, atomically.
-- KEYS: 1 fence, 2 totals, 3 unknown-type totals
-- ARGV: user_prefix, day_prefix, first_offset, last_offset,
--       n_users, {bucket, user, first_ms, last_ms, n_pairs, {type_slot, count}...}...,
--       n_days, {day, expire_at, n_members, {user}...}...,
--       n_totals, {field, count}..., n_unknown, {name, count}...
-- Returns {status, applied_before}: 1 applied, 0 already applied (replay), -1 partial overlap.
local applied = tonumber(redis.call('GET', KEYS[1]) or '-1')
local first_offset = tonumber(ARGV[3])
local last_offset = tonumber(ARGV[4])
if applied >= last_offset then
  return {0, applied}
end
if applied >= first_offset then
  -- Part of this batch is already in: the caller must refold from applied + 1.
  return {-1, applied}
end

local user_prefix, day_prefix = ARGV[1], ARGV[2]
local B36 = '0123456789abcdefghijklmnopqrstuvwxyz'

-- A user record is "first,last,count_1,...,count_n" in base 36 (empty for zero, trailing
-- empties cut): about 35 bytes, so the bucket hashes it lives in stay listpack-encoded.
local function to_b36(n)
  if n == 0 then return '' end
  local out = {}
  while n > 0 do
    local r = n % 36
    table.insert(out, 1, string.sub(B36, r + 1, r + 1))
    n = (n - r) / 36
  end
  return table.concat(out)
end

local function decode(value)
  local fields = {}
  for part in string.gmatch(value .. ',', '([^,]*),') do
    fields[#fields + 1] = (part == '') and 0 or tonumber(part, 36)
  end
  return fields
end

local i = 5
local n_users = tonumber(ARGV[i]); i = i + 1
for _ = 1, n_users do
  local key = user_prefix .. ARGV[i]
  local user = ARGV[i + 1]
  local first_ms, last_ms = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local n_pairs = tonumber(ARGV[i + 4])
  i = i + 5
  local current = redis.call('HGET', key, user)
  local rec
  if current then
    rec = decode(current)
    -- Event time, not arrival: a late event can only widen [first, last].
    if first_ms < rec[1] then rec[1] = first_ms end
    if last_ms > rec[2] then rec[2] = last_ms end
  else
    rec = {first_ms, last_ms}
  end
  for _ = 1, n_pairs do
    local slot = 2 + tonumber(ARGV[i])
    for fill = #rec + 1, slot do rec[fill] = 0 end
    rec[slot] = rec[slot] + tonumber(ARGV[i + 1])
    i = i + 2
  end
  local parts = {}
  for index = 1, #rec do parts[index] = to_b36(rec[index]) end
  local last_nonempty = #parts
  while last_nonempty > 2 and parts[last_nonempty] == '' do last_nonempty = last_nonempty - 1 end
  redis.call('HSET', key, user, table.concat(parts, ',', 1, last_nonempty))
end

local n_days = tonumber(ARGV[i]); i = i + 1
for _ = 1, n_days do
  local key = day_prefix .. ARGV[i]
  local expire_at = ARGV[i + 1]
  local n_members = tonumber(ARGV[i + 2])
  i = i + 3
  redis.call('SADD', key, unpack(ARGV, i, i + n_members - 1))
  redis.call('EXPIREAT', key, expire_at)
  i = i + n_members
end

local n_totals = tonumber(ARGV[i]); i = i + 1
for _ = 1, n_totals do
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local n_unknown = tonumber(ARGV[i]); i = i + 1
for _ = 1, n_unknown do
  redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end

redis.call('SET', KEYS[1], last_offset)
return {1, applied}
