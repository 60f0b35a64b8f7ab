-- Fold a batch of directory records: for each profile and each (community, role) membership the
-- record with the latest `updated` wins, ties broken by content, so any arrival order and any
-- replay end in the same state.
-- One call per partition: every key lives in that partition's hash slot.
-- KEYS: 1 the set of every community a membership of the partition named (read instead of a
--       key SCAN), then every key the call touches: the profile buckets, the users' membership
--       hashes and the community role sets (a key an argument names but not declared is a bad
--       call: a Redis Cluster routes a script by its declared keys only)
-- ARGV: 1 profile bucket prefix, 2 membership prefix, 3 community prefix,
--       4 profiles: lines "bucket\tuser\tupdated_ms\tstatus\tcreated_ms\tdepartment\tname",
--       5 memberships: lines "bucket\tuser\tcommunity\trole\top\tupdated_ms",
--       6 the inactivity states hash, 7 the department counts hash (both declared keys),
--       8 user record bucket prefix (the buckets of every user named, declared), 9-13 the
--       community people hash, role counts, active people, active owners and active counts
--       (declared keys; fold.lua's section "health" says what they hold)
-- A profile that changes a user's department or enabled status moves the department counts
-- (department_counts.lua says what they hold) by the user's state, read here; release.lua moves
-- them when the state changes. A replayed or older record changes nothing, so neither do they.
-- Every argument is checked before the first write: a bad call fails and leaves nothing behind.
-- Returns {profiles changed, memberships changed}.
local function fail(message)
  return redis.error_reply('directory.lua: ' .. message)
end
if #KEYS < 1 or #ARGV ~= 13 then
  return fail('expects at least 1 key and 13 arguments, got ' .. #KEYS .. ' and ' .. #ARGV)
end
for _, i in ipairs({1, 2, 3, 8}) do
  if ARGV[i] == '' then return fail('ARGV[' .. i .. '] (a key prefix) is empty') end
end
local declared = {}
for i = 1, #KEYS do declared[KEYS[i]] = true end
local registry = KEYS[1]
local states, counts = ARGV[6], ARGV[7]
if not declared[states] or not declared[counts] then
  return fail('ARGV[6] and ARGV[7] (the states and department counts) must be declared keys')
end
local record_prefix, people, role_counts = ARGV[8], ARGV[9], ARGV[10]
local active_people, active_owners, active_counts = ARGV[11], ARGV[12], ARGV[13]
for i = 9, 13 do
  if not declared[ARGV[i]] then
    return fail('ARGV[' .. i .. '] (a community health key) must be a declared key')
  end
end
local profile_prefix, membership_prefix, community_prefix = ARGV[1], ARGV[2], ARGV[3]
local STATUS = {enabled = true, disabled = true}
local ROLE = {owner = true, member = true, follower = true}
local OP = {add = true, remove = true}

local profile_lines, n = {}, 0
for line in string.gmatch(ARGV[4], '[^\n]+') do
  n = n + 1
  local bucket, user, rest = string.match(line, '^(%d+)\t([^\t]+)\t(.*)$')
  local updated, status, created
  if rest then
    updated, status, created = string.match(rest, '^(%-?%d+)\t([^\t]+)\t(%-?%d+)\t[^\t]*\t[^\t]*$')
  end
  if not updated or not STATUS[status] then
    return fail('ARGV[4] line ' .. n .. ' is not bucket, user, updated, status, created, '
      .. 'department, name')
  end
  if not declared[profile_prefix .. bucket] or not declared[record_prefix .. bucket] then
    return fail('ARGV[4] line ' .. n .. ' names an undeclared key: ' .. profile_prefix .. bucket)
  end
  profile_lines[n] = {profile_prefix .. bucket, user, tonumber(updated), rest,
                      record_prefix .. bucket}
end

local membership_lines = {}
n = 0
for line in string.gmatch(ARGV[5], '[^\n]+') do
  n = n + 1
  local bucket, user, community, role, op, updated =
    string.match(line, '^(%d+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t(%-?%d+)$')
  if not user or not ROLE[role] or not OP[op] then
    return fail('ARGV[5] line ' .. n .. ' is not bucket, user, community, role, op, updated')
  end
  if not declared[membership_prefix .. user]
    or not declared[community_prefix .. community .. ':' .. role]
    or not declared[profile_prefix .. bucket] or not declared[record_prefix .. bucket] then
    return fail('ARGV[5] line ' .. n .. ' names an undeclared key')
  end
  membership_lines[n] = {user, community, role, op, tonumber(updated),
                         profile_prefix .. bucket, record_prefix .. bucket}
end

local function newer(updated, value, current)
  if not current then return true end
  local current_updated = tonumber(string.match(current, '^(%-?%d+)'))
  if current_updated == nil then return true end -- unreadable: the checked record replaces it
  return updated > current_updated or (updated == current_updated and value > current)
end

-- The department a profile counts under (nil unless enabled) and a state's figures.
local function department_of(profile)
  return profile and string.match(profile, '^[^\t]*\tenabled\t[^\t]*\t([^\t]*)\t') or nil
end
local function figures(raw)
  local last, flagged, never
  if raw then
    last, flagged, never = string.match(raw, '^[^|]*|[^|]*|[01]|(%-?%d*)|(%d+)|([01])|')
  end
  if not last then return {enabled = 1} end
  local inactive = tonumber(flagged) > 0 and 1 or 0
  local never_active = never == '1' and 1 or 0
  local active = (last ~= '' and inactive == 0 and never_active == 0) and 1 or 0
  local at_risk = string.match(raw, '^[^|]*|[^|]*|[01]|[^|]*|%d+|[01]|[^|]*|%-?%d+|') and 1 or 0
  return {enabled = 1, active = active, inactive = inactive, never_active = never_active,
          at_risk = at_risk}
end
local function move(department, user_figures, sign)
  for figure, value in pairs(user_figures) do
    if value ~= 0 then redis.call('HINCRBY', counts, department .. '\t' .. figure, sign * value) end
  end
end

-- @section community health (layout 4; fold.lua's section "health" says what the keys hold)
-- A person's entry in the people hash: enabled flag ('1' also for no profile), then community
-- and roles held there (letters o, m, f) for each community where they hold one.
local ROLE_LETTER = {owner = 'o', member = 'm', follower = 'f'}
local function read_person(user)
  local raw = redis.call('HGET', people, user)
  local person = {enabled = true, order = {}, roles = {}}
  if raw then
    person.enabled = string.sub(raw, 1, 1) == '1'
    for community, roles in string.gmatch(raw, '\t([^\t]+)\t([^\t]+)') do
      person.order[#person.order + 1] = community
      person.roles[community] = roles
    end
  end
  return person
end
local function write_person(user, person)
  local out = {person.enabled and '1' or '0'}
  for _, community in ipairs(person.order) do
    local roles = person.roles[community]
    if roles and roles ~= '' then
      out[#out + 1] = community
      out[#out + 1] = roles
    end
  end
  if #out == 1 then redis.call('HDEL', people, user) else
    redis.call('HSET', people, user, table.concat(out, '\t'))
  end
end
-- The last event time of the user's record, nil when never seen.
local function last_seen(record_key, user)
  local record = redis.call('HGET', record_key, user)
  if not record or #record < 12 then return nil end
  local _, last = struct.unpack('<I6I6', record)
  return last
end
-- "owners,members,followers,people" of a community, moved by the given differences.
local function move_roles(community, moves)
  local held = redis.call('HGET', role_counts, community)
  local values = {0, 0, 0, 0}
  if held then
    local o, m, f, n = string.match(held, '^(%d+),(%d+),(%d+),(%d+)$')
    values = {tonumber(o), tonumber(m), tonumber(f), tonumber(n)}
  end
  for i = 1, 4 do values[i] = values[i] + (moves[i] or 0) end
  if values[4] == 0 and values[1] + values[2] + values[3] == 0 then
    redis.call('HDEL', role_counts, community)
  else
    redis.call('HSET', role_counts, community, table.concat(values, ','))
  end
end
-- An enabled, seen person (or owner: which = 2) of a community joins (sign 1) or leaves (-1)
-- its sorted set, and its active count as of the counts' instant when within the window.
local meta = redis.call('HMGET', active_counts, '\tasof', '\tw', '\tt')
local asof = tonumber(meta[1])
local from = asof and {asof - tonumber(meta[2]), asof - tonumber(meta[3])} or nil
local function move_active(which, community, user, last, sign)
  local key = which == 1 and active_people or active_owners
  if sign > 0 then redis.call('ZADD', key, string.format('%d', last), community .. '\t' .. user)
  else redis.call('ZREM', key, community .. '\t' .. user) end
  if not from or last < from[which] then return end
  local held = redis.call('HGET', active_counts, community)
  local values = {0, 0}
  if held then
    local a, o = string.match(held, '^(%d+),(%d+)$')
    values = {tonumber(a), tonumber(o)}
  end
  values[which] = values[which] + sign
  if values[1] + values[2] == 0 then redis.call('HDEL', active_counts, community)
  else redis.call('HSET', active_counts, community, values[1] .. ',' .. values[2]) end
end
-- A profile's enabled status (no profile counts as enabled, as the health reads always did).
local function enabled_in(profile)
  return not profile or string.match(profile, '^[^\t]*\t([^\t]*)') == 'enabled'
end

-- Checked: from here on every call succeeds.
local profiles = 0
for _, p in ipairs(profile_lines) do
  local key, user, updated, rest = p[1], p[2], p[3], p[4]
  local current = redis.call('HGET', key, user)
  if newer(updated, rest, current) then
    redis.call('HSET', key, user, rest)
    profiles = profiles + 1
    local was_enabled, now_enabled = enabled_in(current), enabled_in(rest)
    if was_enabled ~= now_enabled and redis.call('HEXISTS', people, user) == 1 then
      local person = read_person(user)
      person.enabled = now_enabled
      write_person(user, person)
      local last = last_seen(p[5], user)
      if last then
        -- Seen: enabled, the person counts in each of their communities again; disabled, not.
        local sign = now_enabled and 1 or -1
        for _, community in ipairs(person.order) do
          move_active(1, community, user, last, sign)
          if string.find(person.roles[community], 'o', 1, true) then
            move_active(2, community, user, last, sign)
          end
        end
      end
    end
    local before, after = department_of(current), department_of(rest)
    if before ~= after then
      local user_figures = figures(redis.call('HGET', states, user))
      if before then move(before, user_figures, -1) end
      if after then move(after, user_figures, 1) end
    end
  end
end

local memberships = 0
for _, m in ipairs(membership_lines) do
  local user, community, role, op, updated = m[1], m[2], m[3], m[4], m[5]
  local key = membership_prefix .. user
  local field = community .. '\t' .. role
  local value = updated .. '\t' .. op
  if newer(updated, value, redis.call('HGET', key, field)) then
    redis.call('HSET', key, field, value)
    local members = community_prefix .. community .. ':' .. role
    if op == 'add' then
      redis.call('SADD', members, user)
      redis.call('SADD', registry, community)
    else
      redis.call('SREM', members, user)
    end
    memberships = memberships + 1
    -- The community health index: the person's entries follow the roles they hold.
    local person = read_person(user)
    local before = person.roles[community] or ''
    local letter = ROLE_LETTER[role]
    local after = ''
    for _, l in ipairs({'o', 'm', 'f'}) do
      local held = string.find(before, l, 1, true) ~= nil
      if l == letter then held = op == 'add' end
      if held then after = after .. l end
    end
    if before ~= after then
      if before == '' then person.order[#person.order + 1] = community end
      person.roles[community] = after
      person.enabled = enabled_in(redis.call('HGET', m[6], user))
      write_person(user, person)
      local moves = {0, 0, 0, 0}
      moves[({o = 1, m = 2, f = 3})[letter]] = op == 'add' and 1 or -1
      if before == '' then moves[4] = 1 elseif after == '' then moves[4] = -1 end
      move_roles(community, moves)
      local last = person.enabled and last_seen(m[7], user) or nil
      if last and moves[4] ~= 0 then move_active(1, community, user, last, moves[4]) end
      local was_owner = string.find(before, 'o', 1, true) ~= nil
      local is_owner = string.find(after, 'o', 1, true) ~= nil
      if last and was_owner ~= is_owner then
        move_active(2, community, user, last, is_owner and 1 or -1)
      end
    end
  end
end
return {profiles, memberships}
