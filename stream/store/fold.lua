-- Apply one partition batch's fold and advance its offset fence, atomically (key layout 4).
-- KEYS: 1 fence, 2 totals, 3 unknown-type totals, 4 reorder buffer, 5 watermark source,
--       6 community activity (community -> "last_ms,events"), 7 user index (list: position ->
--       user id), 8-11 community health: people (user -> "enabled\tcommunity\troles..."),
--       active people and active owners (sorted sets), active counts (hash); see the section
--       "health". Then every other key the call touches (user and received buckets,
--       daily counters, day bitmaps, HyperLogLogs, progressions, content, top items): all of
--       one partition's hash slot. A key named by the payload but not declared is a bad call (a
--       Redis Cluster routes a script by its declared keys only).
-- ARGV: 1 first_offset, 2 last_offset, 3 the payload (JSON, below), 4 the fence the caller
--       believes this partition is at ('' when it does not know).
-- Payload: one JSON object, decoded by cjson in C (text lines parsed with string.match cost a
-- third of the script's time); counts are whole numbers, keys are strings:
--   n   the new-users counter hash (day number -> users new that day)
--   u   user buckets, each [bucket_key, user, first_ms, last_ms, {type: count}, user, ...];
--       users are numbered 1, 2... in this order (the "positions" of tier members and buffer events)
--   slots  counted type -> its slot in a user record (1-based)
--   t   tier days, each [tier, day_number, bitmap_key, counter_key, bitmap_expire_at, hll_key,
--       hll_expire_at, progression_key, spill_key, [position, ...], [minute, ...]]; hll,
--       progression and spill keys '' and minutes [] except for the active tier ("a")
--   m   content mix, each [key, expire_at, [field, count, ...]] (one per day)
--   o   top items, each [key, expire_at, [item, count, ...]] (one per day); cap: items kept a day
--   r   received buckets, each [bucket_key, user, likes, mentions, user, ...]
--   c   communities: [community, last_ms, events, ...]
--   b   reorder buffer: ["time_ms\tuser", ...], one member per (time, user) of the events that
--       count as activity, written whole by the caller (the score is the member's digits)
--   w   highest event time of the batch (-1 when none)
--   tot totals: ["type|object_type", count, ...]; unk unknown types: [raw name, count, ...]
-- Returns {status, applied_before}: 1 applied, 0 already applied (replay), -1 partial overlap,
-- -2 state lost: the fence is behind what the caller already applied (Redis restarted empty or
-- from an older AOF, or failed over to a replica that was behind): nothing is written and the
-- caller re-reads the partition from the fence found.
-- Every argument is checked before the first write: Redis does not roll a script back, so a
-- bad value found half-way would leave half a batch behind (and a retry would count it again).
-- A bad argument is an error reply and nothing changed.
local function fail(what, value)
  local shown = type(value) == 'table' and cjson.encode(value) or tostring(value)
  return redis.error_reply('ESNFOLD bad ' .. what .. ': ' .. string.sub(shown, 1, 200))
end
local floor = math.floor
local function nat(v) return type(v) == 'number' and v >= 0 and v == floor(v) end
local function name(v) return type(v) == 'string' and v ~= '' end
local function list(v) return type(v) == 'table' end
local function int(value) return value and string.match(value, '^%d+$') and tonumber(value) end

local first_offset, last_offset = int(ARGV[1]), int(ARGV[2])
if not first_offset or not last_offset or first_offset > last_offset then
  return fail('offsets', tostring(ARGV[1]) .. '..' .. tostring(ARGV[2]))
end
local expected = nil
if ARGV[4] and ARGV[4] ~= '' then
  expected = tonumber(ARGV[4])
  if not expected or expected ~= floor(expected) or expected < -1 then
    return fail('expected fence', ARGV[4])
  end
end
local ok, p = pcall(cjson.decode, ARGV[3] or '')
if not ok or not list(p) then return fail('payload', ARGV[3]) end
local users, tiers, content, top = p.u, p.t, p.m, p.o
local received, communities, buffered = p.r, p.c, p.b
local totals, unknown = p.tot, p.unk
for what, value in pairs({u = users, t = tiers, m = content, o = top, r = received,
                          c = communities, b = buffered, tot = totals, unk = unknown}) do
  if not list(value) then return fail('payload part', what) end
end
if not nat(p.cap) then return fail('capacity', p.cap) end
local slots = p.slots
if not list(slots) then return fail('slots', slots) end
for type_name, slot in pairs(slots) do
  if not name(type_name) or not nat(slot) or slot < 1 then return fail('slot', type_name) end
end
if p.w ~= -1 and not nat(p.w) then return fail('highest event time', p.w) end

-- @section check
-- Phase 1: check everything; any bad value fails the call before a single write.
local declared = {}
for index = 1, #KEYS do declared[KEYS[index]] = true end
local function undeclared(key) return not declared[key] end

local positions = 0
for _, group in ipairs(users) do
  if not list(group) or #group % 4 ~= 1 then return fail('user bucket', group) end
  if undeclared(group[1]) then return fail('undeclared key', group[1]) end
  for index = 2, #group, 4 do
    -- Inline checks, as for the tier members below: this runs once per user.
    local user, first_ms, last_ms, counts = group[index], group[index + 1], group[index + 2], group[index + 3]
    if type(user) ~= 'string' or user == '' or type(first_ms) ~= 'number' or first_ms < 0
      or first_ms % 1 ~= 0 or type(last_ms) ~= 'number' or last_ms < 0 or last_ms % 1 ~= 0
      or type(counts) ~= 'table' then
      return fail('user', user)
    end
    for type_name, count in pairs(counts) do
      if not slots[type_name] or type(count) ~= 'number' or count < 0 or count % 1 ~= 0 then
        return fail('user counts', user)
      end
    end
    positions = positions + 1
  end
end
if positions > 0 and (not name(p.n) or undeclared(p.n)) then
  return fail('undeclared key', p.n)
end

for _, t in ipairs(tiers) do
  if not list(t) or #t ~= 11 or not (t[1] == 'a' or t[1] == 'p' or t[1] == 'c')
    or not nat(t[2]) or not nat(t[5]) or not nat(t[7]) or not list(t[10]) or not list(t[11]) then
    return fail('tier day', t)
  end
  local active = t[1] == 'a'
  for _, key in ipairs({t[3], t[4], t[6], t[8], t[9]}) do
    if type(key) ~= 'string' then return fail('tier day', t) end
    if key ~= '' and undeclared(key) then return fail('undeclared key', key) end
  end
  if t[3] == '' or t[4] == '' or (active and (t[6] == '' or t[8] == '' or t[9] == '')) then
    return fail('tier day keys', t)
  end
  local members, minutes = t[10], t[11]
  if active and #minutes ~= #members then return fail('active minutes', t) end
  -- Inline checks: these loops run once per member, a function call each would double them.
  for index = 1, #members do
    local position = members[index]
    if type(position) ~= 'number' or position < 1 or position > positions
      or position % 1 ~= 0 then
      return fail('tier member', position)
    end
  end
  if active then
    for index = 1, #minutes do
      local minute = minutes[index]
      if type(minute) ~= 'number' or minute < 0 or minute >= 1440 or minute % 1 ~= 0 then
        return fail('active member minute', minute)
      end
    end
  end
end

local function pairs_of(values, what, key_name)
  if not list(values) or #values % 2 ~= 0 then return fail(what, values) end
  for index = 1, #values, 2 do
    if not key_name(values[index]) or not nat(values[index + 1]) then
      return fail(what, values[index])
    end
  end
end
for _, group in ipairs({content, top}) do
  for _, day in ipairs(group) do
    if not list(day) or #day ~= 3 or not name(day[1]) or not nat(day[2]) then
      return fail(group == top and 'top items day' or 'content day', day)
    end
    if undeclared(day[1]) then return fail('undeclared key', day[1]) end
    local bad = pairs_of(day[3], group == top and 'top item' or 'content field', name)
    if bad then return bad end
  end
end

for _, group in ipairs(received) do
  if not list(group) or #group % 3 ~= 1 then return fail('received bucket', group) end
  if undeclared(group[1]) then return fail('undeclared key', group[1]) end
  for index = 2, #group, 3 do
    if not name(group[index]) or not nat(group[index + 1]) or not nat(group[index + 2]) then
      return fail('received', group[index])
    end
  end
end
if #communities % 3 ~= 0 then return fail('communities', communities) end
for index = 1, #communities, 3 do
  if not name(communities[index]) or not nat(communities[index + 1])
    or not nat(communities[index + 2]) then
    return fail('community', communities[index])
  end
end
-- A member is "time_ms\tuser" (the sweep reads the time back from it). Its score is its digits,
-- taken here once (a C pattern match) and kept for the buffer section: formatting each time and
-- joining the user in Lua cost more than the ZADD itself. A member's time must be a whole number
-- ZADD reads (at most 15 digits: exact as a double) and its user not empty.
local buffer_args = {}
for index = 1, #buffered do
  local member = buffered[index]
  local score = type(member) == 'string' and string.match(member, '^(%d+)\t.')
  if not score or #score > 15 then return fail('reorder buffer entry', member) end
  buffer_args[2 * index - 1] = score
  buffer_args[2 * index] = member
end
for what, values in pairs({totals = totals, ['unknown types'] = unknown}) do
  local bad = pairs_of(values, what, name)
  if bad then return bad end
end

-- @section fence
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
local function day_of(ms) return string.format('%d', floor(ms / DAY)) end
-- unpack() is bounded by Lua's C stack (about 8000 values): long argument lists go in chunks
-- of whole entries of ``stride`` values; the replies come back one per chunk.
local ARGS = 4000
local function call_chunked(command, key, args, stride)
  local replies, size = {}, floor(ARGS / stride) * stride
  for start = 1, #args, size do
    replies[#replies + 1] = redis.call(command, key, unpack(args, start, math.min(start + size - 1, #args)))
  end
  return replies
end
local function hmget(key, fields)
  local held = {}
  for _, reply in ipairs(call_chunked('HMGET', key, fields, 1)) do
    for _, value in ipairs(reply) do held[#held + 1] = value end
  end
  return held
end

-- @section users
-- A user record is binary, little-endian: first_ms and last_ms (6 bytes each), index (4), the
-- width of the counts (1 byte: 2, or 4 once a count passes 65,535), then a count per counted type
-- up to the last non-zero one: 17 + 2n bytes for most users, packed and unpacked by struct in C
-- with no number formatting (decimal or JSON text cost Redis more in sprintf than everything else
-- the fold does for a user). "index" is the user's dense number in this partition (0, 1, 2...,
-- given on first sight by RPUSH to the user index list): their bit in the day bitmaps.
local FORMATS = {[2] = {}, [4] = {}}
local function format_of(width, counted)
  local fmt = FORMATS[width][counted]
  if not fmt then
    fmt = '<I6I6I4B' .. string.rep(width == 2 and 'I2' or 'I4', counted)
    FORMATS[width][counted] = fmt
  end
  return fmt
end
local by_position, position_user = {}, {}  -- position -> record, user id
local seen_before = {}  -- position -> last_ms before this batch (nil: a new user)
local new_users, new_records, new_by_day = {}, {}, {}
local writes = {}  -- bucket key -> {field, value, ...}
local function count_new(day, delta) new_by_day[day] = (new_by_day[day] or 0) + delta end
for _, group in ipairs(users) do
  local key = group[1]
  local fields = {}
  for index = 2, #group, 4 do fields[#fields + 1] = group[index] end
  local held = hmget(key, fields)
  local out = {}
  for index = 2, #group, 4 do
    local user, first_ms, last_ms, counts = group[index], group[index + 1], group[index + 2], group[index + 3]
    local current = held[(index + 2) / 4]
    local rec
    if current then
      local width = string.byte(current, 17)
      rec = {struct.unpack(format_of(width, (#current - 17) / width), current)}
      rec[#rec] = nil  -- unpack's last value is the position after the record
      table.remove(rec, 4)  -- the width: rewritten by encode()
      -- Event time, not arrival: a late event can only widen [first, last].
      if first_ms < rec[1] then
        -- A user is new on the day of their first event: a late event may move that day back.
        local was, now = day_of(rec[1]), day_of(first_ms)
        if was ~= now then
          count_new(was, -1)
          count_new(now, 1)
        end
        rec[1] = first_ms
      end
      seen_before[#by_position + 1] = rec[2]
      if last_ms > rec[2] then rec[2] = last_ms end
    else
      rec = {first_ms, last_ms, -1}
      count_new(day_of(first_ms), 1)
      new_users[#new_users + 1] = user
      new_records[#new_records + 1] = rec
    end
    for type_name, count in pairs(counts) do
      local at = 3 + slots[type_name]
      for fill = #rec + 1, at do rec[fill] = 0 end
      rec[at] = rec[at] + count
    end
    by_position[#by_position + 1] = rec
    position_user[#position_user + 1] = user
    out[#out + 1] = user
    out[#out + 1] = rec
  end
  writes[key] = out
end
-- New users get the next dense indexes: RPUSH returns the list's length after the push.
for start = 1, #new_users, ARGS do
  local stop = math.min(start + ARGS - 1, #new_users)
  local length = redis.call('RPUSH', KEYS[7], unpack(new_users, start, stop))
  for offset = start, stop do new_records[offset][3] = length - (stop - offset) - 1 end
end
local function encode(rec)
  local last = #rec
  while last > 3 and rec[last] == 0 do
    rec[last] = nil
    last = last - 1
  end
  local width = 2
  for index = 4, last do
    if rec[index] > 65535 then width = 4 end
  end
  return struct.pack(format_of(width, last - 3), rec[1], rec[2], rec[3], width, unpack(rec, 4))
end
for key, out in pairs(writes) do
  for index = 2, #out, 2 do out[index] = encode(out[index]) end
  call_chunked('HSET', key, out, 2)
end
for day, delta in pairs(new_by_day) do
  if delta ~= 0 then redis.call('HINCRBY', p.n, day, delta) end
end

-- @section tiers
local bit_of = {}  -- position -> the user's index as text
local MINUTES_OF_ZEROS = string.rep('\0', 1440)
-- Per tier and day: a bitmap of the partition's users by index (kept
-- ESN_DAILY_ACTIVE_RETENTION_DAYS, and at least the longest tier window): BITFIELD SET returns
-- the old bit, so a user is counted once a day whatever the lateness. The day's exact count is
-- a counter that outlives the bitmap; the active tier also keeps a HyperLogLog (kept
-- ESN_ANALYTICS_RETENTION_DAYS) for window trends, and the day's progression: users new to the
-- day by the minute of their first event, a u8 per minute (BITFIELD INCRBY, 1440 bytes a day; a
-- minute's users past 255 in one partition go to the spill hash instead: exact either way), which
-- the active-users-drop alert compares with a week earlier.
for _, t in ipairs(tiers) do
  local tier, day, bitmap, counter, expire_at = t[1], t[2], t[3], t[4], t[5]
  local members, minutes = t[10], t[11]
  local args = {}
  for index, position in ipairs(members) do
    -- Strings, not numbers: redis.call formats a Lua number with sprintf("%.17g").
    local bit = bit_of[position]
    if not bit then
      bit = string.format('%d', by_position[position][3])
      bit_of[position] = bit
    end
    local at = 4 * index
    args[at - 3] = 'SET'
    args[at - 2] = 'u1'
    args[at - 1] = bit
    args[at] = '1'
  end
  local added, fresh, by_minute = 0, {}, {}
  local replies = call_chunked('BITFIELD', bitmap, args, 4)
  for chunk, reply in ipairs(replies) do
    for offset, old in ipairs(reply) do
      if old == 0 then
        added = added + 1
        local index = (chunk - 1) * (ARGS / 4) + offset
        if tier == 'a' then
          fresh[#fresh + 1] = members[index]
          local minute = minutes[index]
          by_minute[minute] = (by_minute[minute] or 0) + 1
        end
      end
    end
  end
  redis.call('EXPIREAT', bitmap, expire_at)
  if added > 0 then
    local number = string.format('%d', day)
    redis.call('HINCRBY', counter, number, added)
    if tier == 'a' then
      local progression, spill, increments = t[8], t[9], {}
      for minute, users_then in pairs(by_minute) do
        increments[#increments + 1] = minute
        increments[#increments + 1] = users_then
      end
      local args_out = {'OVERFLOW', 'FAIL'}
      for index = 1, #increments, 2 do
        args_out[#args_out + 1] = 'INCRBY'
        args_out[#args_out + 1] = 'u8'
        args_out[#args_out + 1] = '#' .. increments[index]
        args_out[#args_out + 1] = increments[index + 1]
      end
      -- Created whole: a string BITFIELD grows is reallocated at twice its length each time.
      if redis.call('EXISTS', progression) == 0 then
        redis.call('SET', progression, MINUTES_OF_ZEROS)
      end
      local result = redis.call('BITFIELD', progression, unpack(args_out))
      for index, value in ipairs(result) do
        if not value then
          local at = 2 * index - 1
          redis.call('HINCRBY', spill, increments[at], increments[at + 1])
          redis.call('EXPIREAT', spill, expire_at)
        end
      end
      redis.call('EXPIREAT', progression, expire_at)
      -- Only users new to the day: the HyperLogLog holds every user of the day already.
      local hll, names = t[6], {}
      for index, position in ipairs(fresh) do names[index] = position_user[position] end
      call_chunked('PFADD', hll, names, 1)
      redis.call('EXPIREAT', hll, t[7])
    end
  end
end

-- @section content
-- One entry per day key: a day's EXPIREAT once, whatever the number of fields.
for _, c in ipairs(content) do
  local fields = c[3]
  for index = 1, #fields, 2 do
    redis.call('HINCRBY', c[1], fields[index], fields[index + 1])
  end
  redis.call('EXPIREAT', c[1], c[2])
end

-- @section top
-- Most-interacted items of a day in this partition: a JSON string [bound, item, count, ...] of
-- at most p.cap items (a sorted set of more than 128 items is a skiplist, about 100 bytes an
-- item; this is about 16). Past the capacity the least counted items are dropped (of equal
-- counts the latest to arrive first) and "bound" keeps the highest count ever dropped.
local cap = p.cap
-- Entries are ranked by a number: count * 2^20 + (2^20 - place), place being the entry's rank
-- of arrival (stored order first, then the batch's), so that table.sort compares numbers in C
-- rather than calling a Lua comparator (which cost more than the rest of the section).
local PLACES = 1048576
for _, day in ipairs(top) do
  local key, expire_at, counted = day[1], day[2], day[3]
  local held = redis.call('GET', key)
  local bound, at, entries = 0, {}, {}
  if held then
    local old = cjson.decode(held)
    bound = old[1]
    for index = 2, #old, 2 do
      local entry = {old[index], old[index + 1]}
      entries[#entries + 1] = entry
      at[entry[1]] = entry
    end
  end
  for index = 1, #counted, 2 do
    local item, count = counted[index], counted[index + 1]
    local entry = at[item]
    if entry then
      entry[2] = entry[2] + count
    else
      entry = {item, count}
      entries[#entries + 1] = entry
      at[item] = entry
    end
  end
  if #entries > cap and #entries < PLACES then
    local ranks = {}
    for place, entry in ipairs(entries) do ranks[place] = entry[2] * PLACES + (PLACES - place) end
    table.sort(ranks)
    local kept = {}
    for index = #ranks, #ranks - cap + 1, -1 do
      kept[#kept + 1] = entries[PLACES - ranks[index] % PLACES]
    end
    for index = #ranks - cap, 1, -1 do
      local count = floor(ranks[index] / PLACES)
      if count > bound then bound = count end
    end
    entries = kept
  end
  local out = {bound}
  for _, entry in ipairs(entries) do
    out[#out + 1] = entry[1]
    out[#out + 1] = entry[2]
  end
  redis.call('SET', key, cjson.encode(out), 'EXAT', expire_at)
end

-- @section received
for _, group in ipairs(received) do
  local key, fields = group[1], {}
  for index = 2, #group, 3 do fields[#fields + 1] = group[index] end
  local held, out = hmget(key, fields), {}
  for offset, user in ipairs(fields) do
    local index = 3 * offset - 1
    local likes, mentions = 0, 0
    if held[offset] then
      local l, m = string.match(held[offset], '^(%d+),(%d+)$')
      likes, mentions = tonumber(l) or 0, tonumber(m) or 0
    end
    out[#out + 1] = user
    out[#out + 1] = string.format('%d,%d', likes + group[index + 1], mentions + group[index + 2])
  end
  call_chunked('HSET', key, out, 2)
end

-- @section communities
-- One hash: community -> "last_ms,events" (one HMGET and one HSET a batch).
if #communities > 0 then
  local names = {}
  for index = 1, #communities, 3 do names[#names + 1] = communities[index] end
  local held = hmget(KEYS[6], names)
  local out = {}
  for offset, value in ipairs(names) do
    local index = 3 * offset - 2
    local last_ms, events = communities[index + 1], communities[index + 2]
    if held[offset] then
      local was_ms, was_events = string.match(held[offset], '^(%d+),(%d+)$')
      if tonumber(was_ms) > last_ms then last_ms = tonumber(was_ms) end
      events = events + tonumber(was_events)
    end
    out[#out + 1] = value
    out[#out + 1] = string.format('%d,%d', last_ms, events)
  end
  call_chunked('HSET', KEYS[6], out, 2)
end

-- @section health
-- Community health, layout 4 (issue 15): every enabled person of a community who was ever seen is
-- a member "community\tuser" of KEYS[9] scored by their last event time, every such owner of
-- KEYS[10] too (directory.lua adds and removes them on joins, leaves, disables and re-enables).
-- KEYS[11] holds per community how many of them are active as of the instant of its field "\tasof"
-- (last event within "\tw", or "\tt" for owners), which community_health.lua moves to the instant
-- read. Here: a user whose last event moved on, who holds a role (KEYS[8]) and is enabled, gets
-- their new time, and a community's count goes up where that brings them into its window. Nothing
-- is checked: only values this call or directory.lua wrote are read.
do
  local moved_users, moved_at = {}, {}
  for position, rec in ipairs(by_position) do
    if seen_before[position] ~= rec[2] then
      moved_users[#moved_users + 1] = position_user[position]
      moved_at[#moved_at + 1] = position
    end
  end
  local held = #moved_users > 0 and hmget(KEYS[8], moved_users) or {}
  local people, owners, entered = {}, {}, {}
  local meta = redis.call('HMGET', KEYS[11], '\tasof', '\tw', '\tt')
  local asof = tonumber(meta[1])
  local people_from = asof and asof - tonumber(meta[2])
  local owners_from = asof and asof - tonumber(meta[3])
  local function enters(was, now, from)
    return from ~= nil and now >= from and not (was and was >= from)
  end
  for offset, user in ipairs(moved_users) do
    local entry = held[offset]
    if entry and string.sub(entry, 1, 1) == '1' then
      local position = moved_at[offset]
      local was, now = seen_before[position], by_position[position][2]
      local score = string.format('%d', now)
      for community, roles in string.gmatch(entry, '\t([^\t]+)\t([^\t]+)') do
        local member = community .. '\t' .. user
        people[#people + 1] = score
        people[#people + 1] = member
        local counts = entered[community] or {0, 0}
        if enters(was, now, people_from) then counts[1] = counts[1] + 1 end
        if string.find(roles, 'o', 1, true) then
          owners[#owners + 1] = score
          owners[#owners + 1] = member
          if enters(was, now, owners_from) then counts[2] = counts[2] + 1 end
        end
        entered[community] = counts
      end
    end
  end
  if #people > 0 then call_chunked('ZADD', KEYS[9], people, 2) end
  if #owners > 0 then call_chunked('ZADD', KEYS[10], owners, 2) end
  local names = {}
  for community, counts in pairs(entered) do
    if counts[1] + counts[2] > 0 then names[#names + 1] = community end
  end
  if #names > 0 then
    local counted, out = hmget(KEYS[11], names), {}
    for offset, community in ipairs(names) do
      local active, active_owners = 0, 0
      if counted[offset] then
        local a, o = string.match(counted[offset], '^(%d+),(%d+)$')
        active, active_owners = tonumber(a), tonumber(o)
      end
      local counts = entered[community]
      out[#out + 1] = community
      out[#out + 1] = string.format('%d,%d', active + counts[1], active_owners + counts[2])
    end
    call_chunked('HSET', KEYS[11], out, 2)
  end
end

-- @section buffer
-- The inactivity engine releases these in event-time order once the watermark passes them.
call_chunked('ZADD', KEYS[4], buffer_args, 2)
if p.w ~= -1 then
  local seen = tonumber(redis.call('GET', KEYS[5]) or '0')
  if p.w > seen then redis.call('SET', KEYS[5], string.format('%d', p.w)) end
end

-- @section totals
for index = 1, #totals, 2 do redis.call('HINCRBY', KEYS[2], totals[index], totals[index + 1]) end
for index = 1, #unknown, 2 do redis.call('HINCRBY', KEYS[3], unknown[index], unknown[index + 1]) end

-- @section end
redis.call('SET', KEYS[1], last_offset)
return {1, applied}
