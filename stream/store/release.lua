-- Commit one release of the inactivity engine for a partition, atomically: user states, due
-- crossings, released buffer members, new flag records (numbered) and the gauges' counts.
-- KEYS: 1 states hash, 2 due zset, 3 reorder buffer, 4 outbox list, 5 outbox seq, 6 counts hash,
--       7 flag history hash
-- ARGV: 1 states "user\tstate" lines, 2 due "user\tcrossing_ms" lines, 3 not due "user" lines,
--       4 released buffer members (one per line), 5 flag records (JSON, one per line),
--       6 count deltas "field\tdelta" lines, 7 flag history entries "user\tkind@ms" lines,
--       8 flags per minute of their time: "key\tminute\tcount\texpire_at" lines
-- Returns the outbox sequence number of the last record added.
for line in string.gmatch(ARGV[1], '[^\n]+') do
  local user, state = string.match(line, '^([^\t]*)\t(.*)$')
  redis.call('HSET', KEYS[1], user, state)
end
for line in string.gmatch(ARGV[2], '[^\n]+') do
  local user, at = string.match(line, '^([^\t]*)\t(%d+)$')
  redis.call('ZADD', KEYS[2], at, user)
end
for user in string.gmatch(ARGV[3], '[^\n]+') do
  redis.call('ZREM', KEYS[2], user)
end
for member in string.gmatch(ARGV[4], '[^\n]+') do
  redis.call('ZREM', KEYS[3], member)
end
local seq = tonumber(redis.call('GET', KEYS[5]) or '0')
for record in string.gmatch(ARGV[5], '[^\n]+') do
  seq = seq + 1
  redis.call('RPUSH', KEYS[4], seq .. '\t' .. record)
end
redis.call('SET', KEYS[5], seq)
for line in string.gmatch(ARGV[6], '[^\n]+') do
  local field, delta = string.match(line, '^([^\t]*)\t(-?%d+)$')
  redis.call('HINCRBY', KEYS[6], field, delta)
end
for line in string.gmatch(ARGV[7], '[^\n]+') do
  local user, entry = string.match(line, '^([^\t]*)\t(.*)$')
  local history = redis.call('HGET', KEYS[7], user)
  redis.call('HSET', KEYS[7], user, history and (history .. ',' .. entry) or entry)
end
for line in string.gmatch(ARGV[8], '[^\n]+') do
  local key, minute, count, expire_at = string.match(line, '^([^\t]*)\t(%d+)\t(%d+)\t(%d+)$')
  redis.call('HINCRBY', key, minute, count)
  redis.call('EXPIREAT', key, expire_at)
end
return seq
