-- Fold a batch of directory records: for each profile and each (community, role) membership the
-- record with the latest `updated` wins, ties broken by content, so any arrival order and any
-- replay end in the same state.
-- ARGV: 1 profile bucket prefix, 2 membership prefix, 3 community prefix,
--       4 profiles: lines "bucket\tuser\tupdated_ms\tstatus\tcreated_ms\tdepartment\tname",
--       5 memberships: lines "user\tcommunity\trole\top\tupdated_ms",
--       6 the set of every community ever named by a membership (read instead of a key SCAN)
-- Returns {profiles changed, memberships changed}.
local profile_prefix, membership_prefix, community_prefix = ARGV[1], ARGV[2], ARGV[3]

local function newer(updated, value, current)
  if not current then return true end
  local current_updated = tonumber(string.match(current, '^(%d+)'))
  return updated > current_updated or (updated == current_updated and value > current)
end

local profiles = 0
for line in string.gmatch(ARGV[4], '[^\n]+') do
  local bucket, user, rest = string.match(line, '^([^\t]*)\t([^\t]*)\t(.*)$')
  local updated = tonumber(string.match(rest, '^(%d+)'))
  local key = profile_prefix .. bucket
  if newer(updated, rest, redis.call('HGET', key, user)) then
    redis.call('HSET', key, user, rest)
    profiles = profiles + 1
  end
end

local memberships = 0
for line in string.gmatch(ARGV[5], '[^\n]+') do
  local user, community, role, op, updated =
    string.match(line, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$')
  updated = tonumber(updated)
  local key = membership_prefix .. user
  local field = community .. '\t' .. role
  local value = updated .. '\t' .. op
  if newer(updated, value, redis.call('HGET', key, field)) then
    redis.call('HSET', key, field, value)
    local members = community_prefix .. community .. ':' .. role
    if op == 'add' then
      redis.call('SADD', members, user)
      redis.call('SADD', ARGV[6], community)
    else
      redis.call('SREM', members, user)
    end
    memberships = memberships + 1
  end
end
return {profiles, memberships}
