-- Commit community flag changes, each exactly once: compare-and-set the community's state and
-- number the records of the changes that won.
-- KEYS: 1 states hash (community -> flags string), 2 outbox list, 3 outbox seq
-- ARGV: lines "community\told_state\tnew_state\trecord_json" (one per record; a community whose
--       two flags changed has two lines with the same states)
-- A line whose old state is no longer the stored one lost a race with another evaluator and is
-- dropped. Every argument is checked before the first write: a bad call fails and leaves nothing
-- behind. Returns the number of records added.
local function fail(message)
  return redis.error_reply('community_flags.lua: ' .. message)
end
if #KEYS ~= 3 or #ARGV ~= 1 then
  return fail('expects 3 keys and 1 argument, got ' .. #KEYS .. ' and ' .. #ARGV)
end
local lines, n = {}, 0
for line in string.gmatch(ARGV[1], '[^\n]+') do
  n = n + 1
  local community, old, new, record = string.match(line, '^([^\t]+)\t([^\t]*)\t([^\t]*)\t({.*})$')
  if not community then
    return fail('ARGV[1] line ' .. n .. ' is not community, old state, new state, JSON record')
  end
  lines[n] = {community, old, new, record}
end
local seq_text = redis.call('GET', KEYS[3])
if seq_text and not string.match(seq_text, '^%d+$') then
  return fail('the outbox sequence ' .. KEYS[3] .. ' is not a number')
end

-- Checked: from here on every call succeeds.
local seq = tonumber(seq_text or '0')
local added = 0
local decided = {}
for _, line in ipairs(lines) do
  local community, old, new, record = line[1], line[2], line[3], line[4]
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
