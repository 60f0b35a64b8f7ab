-- Apply one partition batch's fold and advance its offset fence, atomically.
-- KEYS: 1 fence, 2 totals, 3 unknown-type totals, 4 reorder buffer, 5 watermark source
-- ARGV: 1 user_prefix, 2 day_prefix, 3 first_offset, 4 last_offset,
--       5 users: one line per user, "bucket\tuser\tfirst_ms\tlast_ms\tslot=count,slot=count",
--       6 days: one line per UTC day, "day\texpire_at\tuser\tuser...",
--       7 reorder buffer: lines "time_ms\tuser" of the events that count as activity,
--       8 highest event time of the batch ('' when none),
--       9 n_totals, {field, count}..., then n_unknown, {name, count}...
-- Users and days travel as two text blobs: one argument per value cost the client more to encode
-- than the whole fold (user ids cannot hold tabs or newlines: the contract forbids control chars).
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

-- A user record is "first_ms,last_ms,count_1,...,count_n" in decimal, empty for a zero count,
-- trailing empties cut: about 40 bytes, so the bucket hashes it lives in stay listpack-encoded.
-- (Base 36 saved 8 bytes a user but cost Redis three times the CPU in Lua string building.)
local function decode(value)
  local rec = {}
  for part in string.gmatch(value .. ',', '([^,]*),') do
    rec[#rec + 1] = tonumber(part) or 0
  end
  return rec
end

local function encode(rec)
  local last = 2
  for index = 3, #rec do
    if rec[index] ~= 0 then last = index end
  end
  local parts = {}
  for index = 1, last do
    local value = rec[index]
    parts[index] = (index > 2 and value == 0) and '' or string.format('%d', value)
  end
  return table.concat(parts, ',')
end

for line in string.gmatch(ARGV[5], '[^\n]+') do
  local bucket, user, first_ms, last_ms, counts =
    string.match(line, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')
  first_ms, last_ms = tonumber(first_ms), tonumber(last_ms)
  local key = user_prefix .. bucket
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
  for slot, count in string.gmatch(counts, '(%d+)=(%d+)') do
    slot = 2 + tonumber(slot)
    for fill = #rec + 1, slot do rec[fill] = 0 end
    rec[slot] = rec[slot] + tonumber(count)
  end
  redis.call('HSET', key, user, encode(rec))
end

-- unpack() is bounded by Lua's C stack (about 8000 values): members go in chunks.
local function sadd_all(key, members)
  for start = 1, #members, 1000 do
    redis.call('SADD', key, unpack(members, start, math.min(start + 999, #members)))
  end
end

for line in string.gmatch(ARGV[6], '[^\n]+') do
  local day, expire_at, rest = string.match(line, '^([^\t]*)\t([^\t]*)\t(.*)$')
  local members = {}
  for member in string.gmatch(rest, '[^\t]+') do members[#members + 1] = member end
  local key = day_prefix .. day
  sadd_all(key, members)
  redis.call('EXPIREAT', key, expire_at)
end

-- The inactivity engine releases these in event-time order once the watermark passes them.
for line in string.gmatch(ARGV[7], '[^\n]+') do
  local at = string.match(line, '^(%d+)\t')
  redis.call('ZADD', KEYS[4], at, line)
end
if ARGV[8] ~= '' then
  local seen = tonumber(redis.call('GET', KEYS[5]) or '0')
  if tonumber(ARGV[8]) > seen then redis.call('SET', KEYS[5], ARGV[8]) end
end

local i = 9
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
