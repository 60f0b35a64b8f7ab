-- Bring a flag outbox back in line with its topic after Redis lost writes (restarted from an
-- older AOF, failed over to a replica that was behind). The outbox and its counter rolled back
-- with the states, so the records released again are numbered from an older point: some are
-- already on the topic (maybe in another order, under other numbers), some are not. Matched by
-- event id (deterministic: the same change has the same id), those already published are
-- dropped; the rest are renumbered after the topic's last record, so esn.seq stays gapless.
-- Published ids that were not released again yet go to the "ahead" set: release.lua commits
-- their transition without a new record when it makes one of them again.
-- Also the ordinary case after a crash between a commit and its trim: every entry up to the
-- topic's tail matches, is dropped, and the numbers of the rest do not change.
-- KEYS: 1 outbox list ("seq\trecord"), 2 outbox seq counter, 3 ahead set, 4 published seq
-- ARGV: 1 tail: the esn.seq of the topic's last committed record (0 when none)
--       2 from: the lowest esn.seq whose event ids are given
--       3 the event ids of the topic's records from ARGV[2] to ARGV[1], one per line
--       4 the JSON field holding a record's event id, 5 seconds the ahead set is kept
-- Every argument and entry is checked before the first write.
-- Returns {dropped, kept}; nothing is written when it returns {-1, 0} (the outbox starts before
-- ARGV[2]: read the topic further back) or {-2, published} (ARGV[1] is below a sequence number
-- already committed and trimmed: the caller's view of the topic is stale, or the topic lost
-- records to retention or was recreated).
local function fail(message)
  return redis.error_reply('outbox_reconcile.lua: ' .. message)
end
if #KEYS ~= 4 or #ARGV ~= 5 then
  return fail('expects 4 keys and 5 arguments, got ' .. #KEYS .. ' and ' .. #ARGV)
end
for i = 1, 2 do
  if not string.match(ARGV[i], '^%d+$') then return fail('ARGV[' .. i .. '] is not a number') end
end
if not string.match(ARGV[5], '^[1-9]%d*$') then return fail('ARGV[5] is not a number of seconds') end
if ARGV[4] == '' then return fail('ARGV[4] names no field') end
local tail, from = tonumber(ARGV[1]), tonumber(ARGV[2])
local published = redis.call('GET', KEYS[4]) or '0'
if not string.match(published, '^%d+$') then
  return fail('the published seq ' .. KEYS[4] .. ' is not a number')
end
if tail < tonumber(published) then
  return {-2, tonumber(published)}
end

local on_topic = {}
for id in string.gmatch(ARGV[3], '[^\n]+') do
  on_topic[id] = (on_topic[id] or 0) + 1
end

local entries = redis.call('LRANGE', KEYS[1], 0, -1)
local kept, dropped, matched_ahead = {}, 0, {}
for n, entry in ipairs(entries) do
  local seq, record = string.match(entry, '^(%d+)\t(.+)$')
  if seq == nil then return fail('outbox entry ' .. n .. ' is not seq<TAB>record') end
  if n == 1 and tonumber(seq) < from then
    return {-1, 0}
  end
  local ok, doc = pcall(cjson.decode, record)
  if not ok or type(doc) ~= 'table' or type(doc[ARGV[4]]) ~= 'string' then
    return fail('outbox entry ' .. n .. ' has no string ' .. ARGV[4])
  end
  local id = doc[ARGV[4]]
  if (on_topic[id] or 0) > 0 then
    on_topic[id] = on_topic[id] - 1
    dropped = dropped + 1
  elseif redis.call('SISMEMBER', KEYS[3], id) == 1 then
    matched_ahead[#matched_ahead + 1] = id
    dropped = dropped + 1
  else
    kept[#kept + 1] = record
  end
end

-- Checked: from here on every call succeeds.
redis.call('DEL', KEYS[1])
for i, record in ipairs(kept) do
  redis.call('RPUSH', KEYS[1], (tail + i) .. '\t' .. record)
end
redis.call('SET', KEYS[2], tail + #kept)
for _, id in ipairs(matched_ahead) do
  redis.call('SREM', KEYS[3], id)
end
local ahead = 0
for id, count in pairs(on_topic) do
  if count > 0 then
    redis.call('SADD', KEYS[3], id)
    ahead = ahead + 1
  end
end
if ahead > 0 then redis.call('EXPIRE', KEYS[3], ARGV[5]) end
return {dropped, #kept}
