-- Apply one partition batch's fold and advance its offset fence, atomically.
-- KEYS: 1 fence, 2 totals, 3 unknown-type totals, 4 reorder buffer, 5 watermark source,
--       6 community -> last event ms, 7 community -> events
-- ARGV: 1 user_prefix, 2 stats_prefix (hashes "<prefix><a|p|c|n>": day number -> users),
--       3 first_offset, 4 last_offset,
--       5 users: one line per user, "bucket\tuser\tfirst_ms\tlast_ms\tslot=count,slot=count",
--       6 tier days: "tier\tday_number\tset_key\tset_expire_at\thll_key\thll_expire_at\tuser..."
--         (hll_key '' when the tier keeps no HyperLogLog; active members are "user@minute"),
--       7 reorder buffer: lines "time_ms\tuser" of the events that count as activity,
--       8 highest event time of the batch ('' when none),
--       9 content mix: "key\texpire_at\tfield=count\tfield=count..." lines (one per day),
--       10 top items: "sketch_key\texpire_at\tcount\titem\tcount\titem..." (one per day),
--       11 sketch capacity,
--       12 received: "bucket\tuser\tlikes\tmentions" lines, 13 received prefix,
--       14 communities: "community\tlast_ms\tevents" lines,
--       15 last event per tier: "key\tms\tuser\tms\tuser..." lines (ZADD GT: never backwards),
--       16 totals: "type|object_type\tcount" lines, 17 unknown types: "raw name\tcount" lines
-- Lines travel as text blobs: one argument per value cost the client more to encode than the
-- whole fold (user ids cannot hold tabs or newlines: the contract forbids control chars; the
-- caller leaves out object, community and target ids that hold them).
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

local user_prefix, stats_prefix = ARGV[1], ARGV[2]
local DAY = 86400000
local function day_of(ms) return string.format('%d', math.floor(ms / DAY)) end

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
    if first_ms < rec[1] then
      -- A user is new on the day of their first event: a late event may move that day back.
      local was, now = day_of(rec[1]), day_of(first_ms)
      if was ~= now then
        redis.call('HINCRBY', stats_prefix .. 'n', was, -1)
        redis.call('HINCRBY', stats_prefix .. 'n', now, 1)
      end
      rec[1] = first_ms
    end
    if last_ms > rec[2] then rec[2] = last_ms end
  else
    rec = {first_ms, last_ms}
    redis.call('HINCRBY', stats_prefix .. 'n', day_of(first_ms), 1)
  end
  for slot, count in string.gmatch(counts, '(%d+)=(%d+)') do
    slot = 2 + tonumber(slot)
    for fill = #rec + 1, slot do rec[fill] = 0 end
    rec[slot] = rec[slot] + tonumber(count)
  end
  redis.call('HSET', key, user, encode(rec))
end

-- unpack() is bounded by Lua's C stack (about 8000 values): members go in chunks.
local function chunked(command, key, members)
  local changed = 0
  for start = 1, #members, 1000 do
    changed = changed + redis.call(command, key, unpack(members, start, math.min(start + 999, #members)))
  end
  return changed
end

-- Per tier and day: the exact set (kept ESN_DAILY_ACTIVE_RETENTION_DAYS), its exact size as a
-- counter that outlives it, and a HyperLogLog (kept ESN_ANALYTICS_RETENTION_DAYS) for windows.
for line in string.gmatch(ARGV[6], '[^\n]+') do
  local tier, day, set_key, set_expire, hll_key, hll_expire, rest =
    string.match(line, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')
  local members = {}
  local added = 0
  if tier == 'a' then
    -- "user@minute": a user new to the day also counts at the minute of their first event, the
    -- day's progression ("<stats_prefix>m:<day>": minute -> users) that the alerts compare.
    local progression = stats_prefix .. 'm:' .. day
    for member in string.gmatch(rest, '[^\t]+') do
      local user, minute = string.match(member, '^(.*)@(%d+)$')
      members[#members + 1] = user
      if redis.call('SADD', set_key, user) == 1 then
        added = added + 1
        redis.call('HINCRBY', progression, minute, 1)
      end
    end
    if added > 0 then redis.call('EXPIREAT', progression, set_expire) end
  else
    for member in string.gmatch(rest, '[^\t]+') do members[#members + 1] = member end
    added = chunked('SADD', set_key, members)
  end
  if added > 0 then redis.call('HINCRBY', stats_prefix .. tier, day, added) end
  redis.call('EXPIREAT', set_key, set_expire)
  if hll_key ~= '' then
    chunked('PFADD', hll_key, members)
    redis.call('EXPIREAT', hll_key, hll_expire)
  end
end

-- One line per day key: a day's EXPIREAT once, whatever the number of fields.
for line in string.gmatch(ARGV[9], '[^\n]+') do
  local key, expire_at, rest = string.match(line, '^([^\t]*)\t([^\t]*)\t(.*)$')
  for field, count in string.gmatch(rest, '([^\t]+)=(%d+)') do
    redis.call('HINCRBY', key, field, count)
  end
  redis.call('EXPIREAT', key, expire_at)
end

-- Most-interacted items of a day: a bounded sorted set of at most ARGV[11] items. The batch's
-- counts are added with one ZMSCORE and one multi-member ZADD (a ZINCRBY per item cost Redis more
-- than the rest of the fold); past the capacity the least counted items are dropped and
-- "<key>:evicted" keeps the highest count ever dropped: how much any listed count may be short.
-- One line per day: "key\texpire_at\tcount\titem\tcount\titem...".
local capacity = tonumber(ARGV[11])
for line in string.gmatch(ARGV[10], '[^\n]+') do
  local key, expire_at, rest = string.match(line, '^([^\t]*)\t([^\t]*)\t(.*)$')
  local counts, items = {}, {}
  for count, item in string.gmatch(rest, '(%d+)\t([^\t]+)') do
    counts[#counts + 1] = tonumber(count)
    items[#items + 1] = item
  end
  for start = 1, #items, 1000 do
    local stop = math.min(start + 999, #items)
    local held = redis.call('ZMSCORE', key, unpack(items, start, stop))
    local args = {}
    for index = start, stop do
      local before = held[index - start + 1]
      args[#args + 1] = counts[index] + (before and tonumber(before) or 0)
      args[#args + 1] = items[index]
    end
    redis.call('ZADD', key, unpack(args))
  end
  local excess = redis.call('ZCARD', key) - capacity
  if excess > 0 then
    local dropped = redis.call('ZPOPMIN', key, excess)
    local bound = tonumber(redis.call('GET', key .. ':evicted') or '0')
    local highest = tonumber(dropped[#dropped])
    if highest > bound then redis.call('SET', key .. ':evicted', highest) end
    redis.call('EXPIREAT', key .. ':evicted', expire_at)
  end
  redis.call('EXPIREAT', key, expire_at)
end

local received_prefix = ARGV[13]
for line in string.gmatch(ARGV[12], '[^\n]+') do
  local bucket, user, likes, mentions = string.match(line, '^([^\t]*)\t([^\t]*)\t(%d+)\t(%d+)$')
  local key = received_prefix .. bucket
  local current = redis.call('HGET', key, user)
  local had_likes, had_mentions = 0, 0
  if current then
    had_likes, had_mentions = string.match(current, '^(%d+),(%d+)$')
  end
  redis.call('HSET', key, user,
    string.format('%d,%d', tonumber(had_likes) + tonumber(likes), tonumber(had_mentions) + tonumber(mentions)))
end

for line in string.gmatch(ARGV[14], '[^\n]+') do
  local community, last_ms, events = string.match(line, '^([^\t]*)\t(%d+)\t(%d+)$')
  local seen = tonumber(redis.call('HGET', KEYS[6], community) or '-1')
  if tonumber(last_ms) > seen then redis.call('HSET', KEYS[6], community, last_ms) end
  redis.call('HINCRBY', KEYS[7], community, events)
end

-- The inactivity engine releases these in event-time order once the watermark passes them.
-- Multi-member ZADDs: one call per 500 members rather than one per event.
local buffered = {}
for line in string.gmatch(ARGV[7], '[^\n]+') do
  buffered[#buffered + 1] = string.match(line, '^(%d+)\t')
  buffered[#buffered + 1] = line
  if #buffered >= 1000 then
    redis.call('ZADD', KEYS[4], unpack(buffered))
    buffered = {}
  end
end
if #buffered > 0 then redis.call('ZADD', KEYS[4], unpack(buffered)) end
if ARGV[8] ~= '' then
  local seen = tonumber(redis.call('GET', KEYS[5]) or '0')
  if tonumber(ARGV[8]) > seen then redis.call('SET', KEYS[5], ARGV[8]) end
end

-- Each tier's "last seen" sorted set: window counts are then one ZCOUNT, exact, with no union.
for line in string.gmatch(ARGV[15], '[^\n]+') do
  local key, rest = string.match(line, '^([^\t]*)\t(.*)$')
  local args = {}
  for at, user in string.gmatch(rest, '(%d+)\t([^\t]+)') do
    args[#args + 1] = at
    args[#args + 1] = user
    if #args >= 1000 then
      redis.call('ZADD', key, 'GT', unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('ZADD', key, 'GT', unpack(args)) end
end

-- Totals and raw unknown-type names: "field\tcount" lines.
for field, count in string.gmatch(ARGV[16], '([^\t\n]+)\t(%d+)') do
  redis.call('HINCRBY', KEYS[2], field, count)
end
for name, count in string.gmatch(ARGV[17], '([^\t\n]+)\t(%d+)') do
  redis.call('HINCRBY', KEYS[3], name, count)
end

redis.call('SET', KEYS[1], last_offset)
return {1, applied}
