-- Register what a deployment's state is built under, atomically, and return what is stored.
-- KEYS: 1 the deployment hash
-- ARGV: 1 format, 2 key layout, 3 user buckets, 4 activity types, 5 definitions
-- A field already stored wins (the first worker registers the deployment). The layout is written
-- only with a new record: a record without one was written before layouts existed (layout 1),
-- and must stay recognisable as such.
-- Returns {user_buckets, activity_types, definitions, layout}; layout '1' when none is stored.
if #KEYS ~= 1 or #ARGV ~= 5 then
  return redis.error_reply('deployment.lua: expects 1 key and 5 arguments')
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'layout', ARGV[2])
end
redis.call('HSETNX', KEYS[1], 'format', ARGV[1])
redis.call('HSETNX', KEYS[1], 'user_buckets', ARGV[3])
redis.call('HSETNX', KEYS[1], 'activity_types', ARGV[4])
redis.call('HSETNX', KEYS[1], 'definitions', ARGV[5])
local stored = redis.call('HMGET', KEYS[1], 'user_buckets', 'activity_types', 'definitions', 'layout')
if not stored[4] then stored[4] = '1' end
return stored
