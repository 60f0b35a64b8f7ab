-- Commit one release (or one migration to new definitions) of the inactivity engine for a
-- partition, atomically: user states, due crossings, released buffer members, new flag records
-- (numbered), the gauges' counts, and the definitions the partition's states are now under.
-- KEYS: 1 states hash, 2 due zset, 3 reorder buffer, 4 outbox list, 5 outbox seq, 6 counts hash,
--       7 flag history hash, 8 definitions hash (partition -> "definitions\treleased_ms"),
--       9 the partition's release version (counts the commits), 10 the "ahead" set of event ids
--       already on the flag topic though Redis lost them (see outbox_reconcile.lua),
--       11 the department counts hash (see department_counts.lua), then the per-minute flag
--       count hashes ARGV[8] names and the profile buckets ARGV[15] names (every key declared,
--       one hash slot)
-- ARGV: 1 states "user\tstate" lines, 2 due "user\tcrossing_ms" lines, 3 not due "user" lines,
--       4 released buffer members (one per line), 5 flag records (JSON, one per line),
--       6 count deltas "field\tdelta" lines, 7 flag history entries "user\tkind@ms" lines,
--       8 flags per minute of their time: "key\tminute\tcount\texpire_at" lines,
--       9 partition, 10 the definitions the caller read the states under ('' when none stored),
--       11 the definitions the states are under after this call,
--       12 the instant released up to ('' for a migration: it keeps the stored one),
--       13 the release version the caller read before it read the states ('' skips the check),
--       14 the event id of each flag record of ARGV[5], one per line in the same order,
--       15 the profile bucket of each user of ARGV[1], one per line in the same order
-- A state that changes a user's department figures (active, inactive, never_active) moves the
-- department counts of their profile, read here (the directory's script moves them when the
-- profile changes): the counts stay what a scan of profiles and states gives, replays included.
-- A record whose event id is in the ahead set is already published: its transition is committed,
-- the record is not queued again (and the id leaves the set).
-- Every argument is checked before the first write: a bad call fails and leaves nothing behind.
-- Returns the outbox sequence number of the last record added, or -1 (nothing written) when the
-- partition's stored definitions are not ARGV[10] (another worker migrated it meanwhile) or its
-- release version is not ARGV[13] (another worker released it meanwhile: a zombie and the new
-- owner sweeping at once would otherwise both commit the same transitions).
local function fail(message)
  return redis.error_reply('release.lua: ' .. message)
end
if #KEYS < 11 or #ARGV ~= 15 then
  return fail('expects at least 11 keys and 15 arguments, got ' .. #KEYS .. ' and ' .. #ARGV)
end

local function parse(index, pattern, what)
  local out = {}
  local n = 0
  for line in string.gmatch(ARGV[index], '[^\n]+') do
    n = n + 1
    local parsed = {string.match(line, pattern)}
    if #parsed == 0 then
      return nil, fail('ARGV[' .. index .. '] line ' .. n .. ' is not ' .. what)
    end
    out[n] = parsed
  end
  return out
end

local INT = '(%-?%d+)'
local OPT = '(%-?%d*)'
local STATE = '^' .. INT .. '|' .. INT .. '|[01]|' .. OPT .. '|%d+|[01]|' .. OPT .. '$'
-- The same with the at-risk instant and the active-day bits (hex) after it.
local STATE_RHYTHM = '^' .. INT .. '|' .. INT .. '|[01]|' .. OPT .. '|%d+|[01]|' .. OPT .. '|'
  .. OPT .. '|%x+$'
local specs = {
  {1, '^([^\t]+)\t(.+)$', 'user<TAB>state'},
  {2, '^([^\t]+)\t' .. INT .. '$', 'user<TAB>crossing_ms'},
  {3, '^([^\t]+)$', 'a user'},
  {4, '^(.+)$', 'a buffer member'},
  {5, '^({.*})$', 'a JSON object'},
  {6, '^([^\t]+)\t' .. INT .. '$', 'field<TAB>delta'},
  {7, '^([^\t]+)\t([inrw]@%-?%d+)$', 'user<TAB>code@ms'},
  {8, '^([^\t]+)\t(%d+)\t(%d+)\t(%d+)$', 'key<TAB>minute<TAB>count<TAB>expire_at'},
  {14, '^([^\n]+)$', 'an event id'},
  {15, '^([^\n]+)$', 'a profile bucket key'},
}
local lines = {}
for _, spec in ipairs(specs) do
  local parsed, err = parse(spec[1], spec[2], spec[3])
  if err then return err end
  lines[spec[1]] = parsed
end
for n, line in ipairs(lines[1]) do
  if not string.match(line[2], STATE) and not string.match(line[2], STATE_RHYTHM) then
    return fail('ARGV[1] line ' .. n .. ' has no valid state: ' .. line[2])
  end
end
if #lines[14] ~= #lines[5] then
  return fail('ARGV[14] has ' .. #lines[14] .. ' event ids for ' .. #lines[5] .. ' records')
end
if #lines[15] ~= #lines[1] then
  return fail('ARGV[15] has ' .. #lines[15] .. ' profile buckets for ' .. #lines[1] .. ' states')
end
local declared = {}
for i = 12, #KEYS do declared[KEYS[i]] = true end
for n, line in ipairs(lines[15]) do
  if not declared[line[1]] then return fail('ARGV[15] line ' .. n .. ' names an undeclared key') end
end
for n, line in ipairs(lines[8]) do
  if tonumber(line[2]) >= 1440 then return fail('ARGV[8] line ' .. n .. ': minute >= 1440') end
  if not declared[line[1]] then return fail('ARGV[8] line ' .. n .. ' names an undeclared key') end
end
if not string.match(ARGV[9], '^%d+$') then return fail('ARGV[9] is not a partition') end
if string.find(ARGV[10], '[\t\n]') then return fail('ARGV[10] is not a definitions record') end
if ARGV[11] == '' or string.find(ARGV[11], '[\t\n]') then
  return fail('ARGV[11] is not a definitions record')
end
if not string.match(ARGV[12], '^%-?%d*$') then return fail('ARGV[12] is not an instant') end
if not string.match(ARGV[13], '^%d*$') then return fail('ARGV[13] is not a release version') end
local version = redis.call('GET', KEYS[9]) or '0'
if not string.match(version, '^%d+$') then
  return fail('the release version ' .. KEYS[9] .. ' is not a number')
end
local seq_text = redis.call('GET', KEYS[5])
if seq_text and not string.match(seq_text, '^%d+$') then
  return fail('the outbox sequence ' .. KEYS[5] .. ' is not a number')
end

local stored = redis.call('HGET', KEYS[8], ARGV[9]) or ''
local stored_definitions, stored_released = string.match(stored, '^([^\t]*)\t?(%-?%d*)$')
if stored_definitions == nil then
  return fail('the stored definitions of partition ' .. ARGV[9] .. ' are unreadable')
end
if stored_definitions ~= ARGV[10] then
  return -1
end
if ARGV[13] ~= '' and ARGV[13] ~= version then
  return -1
end

-- The department figures of a stored state: active (seen, no flag but at risk), inactive,
-- never_active, at_risk.
local function figures(raw)
  if not raw then return 0, 0, 0, 0 end
  local last, flagged, never = string.match(raw, '^[^|]*|[^|]*|[01]|(%-?%d*)|(%d+)|([01])|')
  if not last then return 0, 0, 0, 0 end -- unreadable: counts as no state (never written so)
  local inactive = tonumber(flagged) > 0 and 1 or 0
  local never_active = never == '1' and 1 or 0
  local active = (last ~= '' and inactive == 0 and never_active == 0) and 1 or 0
  local at_risk = string.match(raw, '^[^|]*|[^|]*|[01]|[^|]*|%d+|[01]|[^|]*|%-?%d+|') and 1 or 0
  return active, inactive, never_active, at_risk
end

-- Checked: from here on every call succeeds.
for n, line in ipairs(lines[1]) do
  local user = line[1]
  local a0, i0, n0, r0 = figures(redis.call('HGET', KEYS[1], user))
  local a1, i1, n1, r1 = figures(line[2])
  if a0 ~= a1 or i0 ~= i1 or n0 ~= n1 or r0 ~= r1 then
    local profile = redis.call('HGET', lines[15][n][1], user)
    local department = profile and string.match(profile, '^[^\t]*\tenabled\t[^\t]*\t([^\t]*)\t')
    if department then
      if a0 ~= a1 then redis.call('HINCRBY', KEYS[11], department .. '\tactive', a1 - a0) end
      if i0 ~= i1 then redis.call('HINCRBY', KEYS[11], department .. '\tinactive', i1 - i0) end
      if n0 ~= n1 then redis.call('HINCRBY', KEYS[11], department .. '\tnever_active', n1 - n0) end
      if r0 ~= r1 then redis.call('HINCRBY', KEYS[11], department .. '\tat_risk', r1 - r0) end
    end
  end
  redis.call('HSET', KEYS[1], user, line[2])
end
for _, line in ipairs(lines[2]) do
  redis.call('ZADD', KEYS[2], line[2], line[1])
end
for _, line in ipairs(lines[3]) do
  redis.call('ZREM', KEYS[2], line[1])
end
for _, line in ipairs(lines[4]) do
  redis.call('ZREM', KEYS[3], line[1])
end
local seq = tonumber(seq_text or '0')
local check_ahead = #lines[5] > 0 and redis.call('EXISTS', KEYS[10]) == 1
local queued = 0
for n, line in ipairs(lines[5]) do
  if check_ahead and redis.call('SREM', KEYS[10], lines[14][n][1]) == 1 then
    -- published before Redis lost it: the transition is committed, the record not queued again
  else
    seq = seq + 1
    queued = queued + 1
    redis.call('RPUSH', KEYS[4], seq .. '\t' .. line[1])
  end
end
if queued > 0 then redis.call('SET', KEYS[5], seq) end
for _, line in ipairs(lines[6]) do
  redis.call('HINCRBY', KEYS[6], line[1], line[2])
end
for _, line in ipairs(lines[7]) do
  local history = redis.call('HGET', KEYS[7], line[1])
  redis.call('HSET', KEYS[7], line[1], history and (history .. ',' .. line[2]) or line[2])
end
for _, line in ipairs(lines[8]) do
  redis.call('HINCRBY', line[1], line[2], line[3])
  redis.call('EXPIREAT', line[1], line[4])
end
local released = stored_released
if ARGV[12] ~= '' and (released == '' or tonumber(ARGV[12]) > tonumber(released)) then
  released = ARGV[12]
end
redis.call('HSET', KEYS[8], ARGV[9], ARGV[11] .. '\t' .. released)
redis.call('INCR', KEYS[9])
return seq
