-- Apply one partition batch's fold and advance its offset fence, atomically.
-- KEYS: 1 fence, 2 totals, 3 unknown-type totals, 4 reorder buffer, 5 watermark source,
--       6 community -> last event ms, 7 community -> events, then every other key the call
--       touches (user and received buckets, stats hashes, day sets, HyperLogLogs, content, top
--       items and their ":evicted" bounds, last-seen sets): all of one partition's hash slot.
--       A key named by an argument but not declared is a bad call (a Redis Cluster routes a
--       script by its declared keys only).
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
--       16 totals: "type|object_type\tcount" lines, 17 unknown types: "raw name\tcount" lines,
--       18 the fence the caller believes this partition is at ('' when it does not know)
-- Lines travel as text blobs: one argument per value cost the client more to encode than the
-- whole fold (user ids cannot hold tabs or newlines: the contract forbids control chars; the
-- caller leaves out object, community and target ids that hold them).
-- Returns {status, applied_before}: 1 applied, 0 already applied (replay), -1 partial overlap,
-- -2 state lost: the fence is behind what the caller already applied (Redis restarted empty or
-- from an older AOF, or failed over to a replica that was behind): nothing is written and the
-- caller re-reads the partition from the fence found.
-- Every argument is parsed and checked before the first write: Redis does not roll a script
-- back, so a bad line found half-way would leave half a batch behind (and a retry would count
-- it again). A bad argument is an error reply and nothing changed.
local function fail(what, line)
  return redis.error_reply('ESNFOLD bad ' .. what .. ': ' .. string.sub(tostring(line), 1, 200))
end
local function int(value) return value and string.match(value, '^%d+$') and tonumber(value) end

local first_offset, last_offset = int(ARGV[3]), int(ARGV[4])
if not first_offset or not last_offset or first_offset > last_offset then
  return fail('offsets', tostring(ARGV[3]) .. '..' .. tostring(ARGV[4]))
end
local expected = nil
if ARGV[18] and ARGV[18] ~= '' then
  expected = tonumber(ARGV[18])
  if not expected or expected ~= math.floor(expected) or expected < -1 then
    return fail('expected fence', ARGV[18])
  end
end
local capacity = int(ARGV[11])
if not capacity then return fail('capacity', ARGV[11]) end
if ARGV[8] ~= '' and not int(ARGV[8]) then return fail('highest event time', ARGV[8]) end

-- Phase 1: parse everything; any bad line fails the call before a single write.
local users = {}
for line in string.gmatch(ARGV[5], '[^\n]+') do
  local bucket, user, first_ms, last_ms, counts =
    string.match(line, '^(%d+)\t([^\t]+)\t(%d+)\t(%d+)\t(.*)$')
  if not bucket then return fail('user line', line) end
  local slots = {}
  for pair in string.gmatch(counts, '[^,]+') do
    local slot, count = string.match(pair, '^(%d+)=(%d+)$')
    if not slot or tonumber(slot) < 1 then return fail('user counts', line) end
    slots[#slots + 1] = {2 + tonumber(slot), tonumber(count)}
  end
  users[#users + 1] = {bucket, user, tonumber(first_ms), tonumber(last_ms), slots}
end

local tiers = {}
for line in string.gmatch(ARGV[6], '[^\n]+') do
  local tier, day, set_key, set_expire, hll_key, hll_expire, rest =
    string.match(line, '^([apc])\t(%d+)\t([^\t]+)\t(%d+)\t([^\t]*)\t(%d+)\t(.*)$')
  if not tier then return fail('tier line', line) end
  local members, minutes = {}, {}
  for member in string.gmatch(rest, '[^\t]+') do
    if tier == 'a' then
      local user, minute = string.match(member, '^(.+)@(%d+)$')
      if not user then return fail('active member', member) end
      members[#members + 1] = user
      minutes[#minutes + 1] = minute
    else
      members[#members + 1] = member
    end
  end
  tiers[#tiers + 1] = {tier, day, set_key, set_expire, hll_key, hll_expire, members, minutes}
end

local content = {}
for line in string.gmatch(ARGV[9], '[^\n]+') do
  local key, expire_at, rest = string.match(line, '^([^\t]+)\t(%d+)\t(.*)$')
  if not key then return fail('content line', line) end
  local fields = {}
  for pair in string.gmatch(rest, '[^\t]+') do
    local field, count = string.match(pair, '^(.+)=(%d+)$')
    if not field then return fail('content field', pair) end
    fields[#fields + 1] = {field, count}
  end
  content[#content + 1] = {key, expire_at, fields}
end

local top = {}
for line in string.gmatch(ARGV[10], '[^\n]+') do
  local key, expire_at, rest = string.match(line, '^([^\t]+)\t(%d+)\t(.*)$')
  if not key then return fail('top items line', line) end
  local counts, items, fields = {}, {}, {}
  for part in string.gmatch(rest, '[^\t]+') do fields[#fields + 1] = part end
  if #fields % 2 ~= 0 then return fail('top items pairs', line) end
  for index = 1, #fields, 2 do
    local count = int(fields[index])
    if not count then return fail('top item count', fields[index]) end
    counts[#counts + 1] = count
    items[#items + 1] = fields[index + 1]
  end
  top[#top + 1] = {key, expire_at, counts, items}
end

local received = {}
for line in string.gmatch(ARGV[12], '[^\n]+') do
  local bucket, user, likes, mentions = string.match(line, '^(%d+)\t([^\t]+)\t(%d+)\t(%d+)$')
  if not bucket then return fail('received line', line) end
  received[#received + 1] = {bucket, user, tonumber(likes), tonumber(mentions)}
end

local communities = {}
for line in string.gmatch(ARGV[14], '[^\n]+') do
  local community, last_ms, events = string.match(line, '^([^\t]+)\t(%d+)\t(%d+)$')
  if not community then return fail('community line', line) end
  communities[#communities + 1] = {community, tonumber(last_ms), events}
end

local buffered = {}
for line in string.gmatch(ARGV[7], '[^\n]+') do
  local at = string.match(line, '^(%d+)\t[^\t]+$')
  if not at then return fail('reorder buffer line', line) end
  buffered[#buffered + 1] = at
  buffered[#buffered + 1] = line
end

local last_seen = {}
for line in string.gmatch(ARGV[15], '[^\n]+') do
  local key, rest = string.match(line, '^([^\t]+)\t(.*)$')
  if not key then return fail('last seen line', line) end
  local fields = {}
  for part in string.gmatch(rest, '[^\t]+') do fields[#fields + 1] = part end
  if #fields % 2 ~= 0 then return fail('last seen pairs', line) end
  local args = {}
  for index = 1, #fields, 2 do
    if not int(fields[index]) then return fail('last seen time', fields[index]) end
    args[#args + 1] = fields[index]
    args[#args + 1] = fields[index + 1]
  end
  last_seen[#last_seen + 1] = {key, args}
end

local function tally(blob, what)
  local out = {}
  for line in string.gmatch(blob, '[^\n]+') do
    local field, count = string.match(line, '^([^\t]+)\t(%d+)$')
    if not field then return nil, fail(what, line) end
    out[#out + 1] = {field, count}
  end
  return out
end
local totals, bad_totals = tally(ARGV[16], 'totals line')
if not totals then return bad_totals end
local unknown, bad_unknown = tally(ARGV[17], 'unknown types line')
if not unknown then return bad_unknown end

-- Every key the writes below will touch must be declared.
local declared = {}
for index = 1, #KEYS do declared[KEYS[index]] = true end
local function undeclared(key) return not declared[key] end
local user_prefix, stats_prefix, received_prefix = ARGV[1], ARGV[2], ARGV[13]
if #users > 0 and undeclared(stats_prefix .. 'n') then return fail('undeclared key', stats_prefix .. 'n') end
for _, u in ipairs(users) do
  if undeclared(user_prefix .. u[1]) then return fail('undeclared key', user_prefix .. u[1]) end
end
for _, t in ipairs(tiers) do
  local needed = {t[3], stats_prefix .. t[1]}
  if t[5] ~= '' then needed[#needed + 1] = t[5] end
  if t[1] == 'a' then needed[#needed + 1] = stats_prefix .. 'm:' .. t[2] end
  for _, key in ipairs(needed) do
    if undeclared(key) then return fail('undeclared key', key) end
  end
end
for _, c in ipairs(content) do
  if undeclared(c[1]) then return fail('undeclared key', c[1]) end
end
for _, day in ipairs(top) do
  if undeclared(day[1]) or undeclared(day[1] .. ':evicted') then
    return fail('undeclared key', day[1])
  end
end
for _, r in ipairs(received) do
  if undeclared(received_prefix .. r[1]) then return fail('undeclared key', received_prefix .. r[1]) end
end
for _, l in ipairs(last_seen) do
  if undeclared(l[1]) then return fail('undeclared key', l[1]) end
end

-- Phase 2: the fence decides whether anything is written.
local applied = tonumber(redis.call('GET', KEYS[1]) or '-1')
if expected and applied < expected then
  return {-2, applied}
end
if applied >= last_offset then
  return {0, applied}
end
if applied >= first_offset then
  -- Part of this batch is already in: the caller must refold from applied + 1.
  return {-1, applied}
end

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

for _, u in ipairs(users) do
  local bucket, user, first_ms, last_ms, slots = u[1], u[2], u[3], u[4], u[5]
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
  for _, pair in ipairs(slots) do
    local slot = pair[1]
    for fill = #rec + 1, slot do rec[fill] = 0 end
    rec[slot] = rec[slot] + pair[2]
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
for _, t in ipairs(tiers) do
  local tier, day, set_key, set_expire, hll_key, hll_expire, members, minutes =
    t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8]
  local added = 0
  if tier == 'a' then
    -- "user@minute": a user new to the day also counts at the minute of their first event, the
    -- day's progression ("<stats_prefix>m:<day>": minute -> users) that the alerts compare.
    local progression = stats_prefix .. 'm:' .. day
    for index, user in ipairs(members) do
      if redis.call('SADD', set_key, user) == 1 then
        added = added + 1
        redis.call('HINCRBY', progression, minutes[index], 1)
      end
    end
    if added > 0 then redis.call('EXPIREAT', progression, set_expire) end
  else
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
for _, c in ipairs(content) do
  for _, pair in ipairs(c[3]) do
    redis.call('HINCRBY', c[1], pair[1], pair[2])
  end
  redis.call('EXPIREAT', c[1], c[2])
end

-- Most-interacted items of a day: a bounded sorted set of at most ARGV[11] items. The batch's
-- counts are added with one ZMSCORE and one multi-member ZADD (a ZINCRBY per item cost Redis more
-- than the rest of the fold); past the capacity the least counted items are dropped and
-- "<key>:evicted" keeps the highest count ever dropped: how much any listed count may be short.
for _, day in ipairs(top) do
  local key, expire_at, counts, items = day[1], day[2], day[3], day[4]
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

for _, r in ipairs(received) do
  local key = received_prefix .. r[1]
  local current = redis.call('HGET', key, r[2])
  local had_likes, had_mentions = 0, 0
  if current then
    had_likes, had_mentions = string.match(current, '^(%d+),(%d+)$')
  end
  redis.call('HSET', key, r[2],
    string.format('%d,%d', (tonumber(had_likes) or 0) + r[3], (tonumber(had_mentions) or 0) + r[4]))
end

for _, c in ipairs(communities) do
  local seen = tonumber(redis.call('HGET', KEYS[6], c[1]) or '-1')
  if c[2] > seen then redis.call('HSET', KEYS[6], c[1], c[2]) end
  redis.call('HINCRBY', KEYS[7], c[1], c[3])
end

-- The inactivity engine releases these in event-time order once the watermark passes them.
-- Multi-member ZADDs: one call per 500 members rather than one per event.
for start = 1, #buffered, 1000 do
  redis.call('ZADD', KEYS[4], unpack(buffered, start, math.min(start + 999, #buffered)))
end
if ARGV[8] ~= '' then
  local seen = tonumber(redis.call('GET', KEYS[5]) or '0')
  if tonumber(ARGV[8]) > seen then redis.call('SET', KEYS[5], ARGV[8]) end
end

-- Each tier's "last seen" sorted set: window counts are then one ZCOUNT, exact, with no union.
for _, l in ipairs(last_seen) do
  local args = l[2]
  for start = 1, #args, 1000 do
    redis.call('ZADD', l[1], 'GT', unpack(args, start, math.min(start + 999, #args)))
  end
end

-- Totals and raw unknown-type names.
for _, pair in ipairs(totals) do redis.call('HINCRBY', KEYS[2], pair[1], pair[2]) end
for _, pair in ipairs(unknown) do redis.call('HINCRBY', KEYS[3], pair[1], pair[2]) end

redis.call('SET', KEYS[1], last_offset)
return {1, applied}
