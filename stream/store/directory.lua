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
--       5 memberships: lines "user\tcommunity\trole\top\tupdated_ms",
--       6 the inactivity states hash, 7 the department counts hash (both declared keys)
-- A profile that changes a user's department or enabled status moves the department counts
-- (department_counts.lua says what they hold) by the user's state, read here; release.lua moves
-- them when the state changes. A replayed or older record changes nothing, so neither do they.
-- Every argument is checked before the first write: a bad call fails and leaves nothing behind.
-- Returns {profiles changed, memberships changed}.
local function fail(message)
  return redis.error_reply('directory.lua: ' .. message)
end
if #KEYS < 1 or #ARGV ~= 7 then
  return fail('expects at least 1 key and 7 arguments, got ' .. #KEYS .. ' and ' .. #ARGV)
end
for i = 1, 3 do
  if ARGV[i] == '' then return fail('ARGV[' .. i .. '] (a key prefix) is empty') end
end
local declared = {}
for i = 1, #KEYS do declared[KEYS[i]] = true end
local registry = KEYS[1]
local states, counts = ARGV[6], ARGV[7]
if not declared[states] or not declared[counts] then
  return fail('ARGV[6] and ARGV[7] (the states and department counts) must be declared keys')
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
  if not declared[profile_prefix .. bucket] then
    return fail('ARGV[4] line ' .. n .. ' names an undeclared key: ' .. profile_prefix .. bucket)
  end
  profile_lines[n] = {profile_prefix .. bucket, user, tonumber(updated), rest}
end

local membership_lines = {}
n = 0
for line in string.gmatch(ARGV[5], '[^\n]+') do
  n = n + 1
  local user, community, role, op, updated =
    string.match(line, '^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t(%-?%d+)$')
  if not user or not ROLE[role] or not OP[op] then
    return fail('ARGV[5] line ' .. n .. ' is not user, community, role, op, updated')
  end
  if not declared[membership_prefix .. user]
    or not declared[community_prefix .. community .. ':' .. role] then
    return fail('ARGV[5] line ' .. n .. ' names an undeclared key')
  end
  membership_lines[n] = {user, community, role, op, tonumber(updated)}
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
  return {enabled = 1, active = active, inactive = inactive, never_active = never_active}
end
local function move(department, user_figures, sign)
  for figure, value in pairs(user_figures) do
    if value ~= 0 then redis.call('HINCRBY', counts, department .. '\t' .. figure, sign * value) end
  end
end

-- Checked: from here on every call succeeds.
local profiles = 0
for _, p in ipairs(profile_lines) do
  local key, user, updated, rest = p[1], p[2], p[3], p[4]
  local current = redis.call('HGET', key, user)
  if newer(updated, rest, current) then
    redis.call('HSET', key, user, rest)
    profiles = profiles + 1
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
  end
end
return {profiles, memberships}
