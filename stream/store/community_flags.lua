-- Commit community flag changes, each exactly once: compare-and-set the community's state and
-- number the records of the changes that won.
-- KEYS: 1 states hash (community -> "flags|version"), 2 outbox list, 3 outbox seq, 4 the ahead set
--       of event ids already on the topic though Redis lost them (see outbox_reconcile.lua)
-- ARGV: lines "community\told_state\tnew_state\tevent_id\trecord_json" (one per record; a
--       community whose two flags changed has two lines with the same states)
-- A record whose event id is in the ahead set is already published: its change is committed, the
-- record is not queued again (and the id leaves the set).
-- A line whose old state is no longer the stored one lost a race with another evaluator and is
-- dropped. Every argument is checked before the first write: a bad call fails and leaves nothing
-- behind. Returns the number of records added.
local function fail(message)
  return redis.error_reply('community_flags.lua: ' .. message)
end
if #KEYS ~= 4 or #ARGV ~= 1 then
  return fail('expects 4 keys and 1 argument, got ' .. #KEYS .. ' and ' .. #ARGV)
end
local lines, n = {}, 0
for line in string.gmatch(ARGV[1], '[^\n]+') do
  n = n + 1
  local community, old, new, event_id, record =
    string.match(line, '^([^\t]+)\t([^\t]*)\t([^\t]*)\t([^\t]+)\t({.*})$')
  if not community then
    return fail('ARGV[1] line ' .. n .. ' is not community, old state, new state, event id, JSON record')
  end
  lines[n] = {community, old, new, record, event_id}
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
  if verdict and redis.call('SREM', KEYS[4], line[5]) == 0 then
    seq = seq + 1
    added = added + 1
    redis.call('RPUSH', KEYS[2], seq .. '\t' .. record)
  end
end
redis.call('SET', KEYS[3], seq)
return added
