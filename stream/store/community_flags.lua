-- Commit community flag changes, each exactly once: compare-and-set the community's state and
-- number the records of the changes that won.
-- KEYS: 1 states hash (community -> flags string), 2 outbox list, 3 outbox seq
-- ARGV: lines "community\told_state\tnew_state\trecord_json" (one per record; a community whose
--       two flags changed has two lines with the same states)
-- A line whose old state is no longer the stored one lost a race with another evaluator and is
-- dropped. Returns the number of records added.
local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
local added = 0
local decided = {}
for line in string.gmatch(ARGV[1], '[^\n]+') do
  local community, old, new, record = string.match(line, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')
  local verdict = decided[community]
  if verdict == nil then
    verdict = (redis.call('HGET', KEYS[1], community) or '') == old
    decided[community] = verdict
    if verdict then redis.call('HSET', KEYS[1], community, new) end
  end
  if verdict then
    seq = seq + 1
    added = added + 1
    redis.call('RPUSH', KEYS[2], seq .. '\t' .. record)
  end
end
redis.call('SET', KEYS[3], seq)
return added
