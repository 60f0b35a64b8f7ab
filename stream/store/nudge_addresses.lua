-- Fold directory profiles into the nudge service's address book: the latest version wins, so
-- a replay or a record read twice changes nothing; the read position moves with the batch.
-- KEYS: 1 address book, 2 positions
-- ARGV: 1 directory partition, 2 next offset, then triples person, updated ms, entry JSON
-- Returns how many entries were written.
if not string.match(ARGV[1] or '', '^%d+$') or not string.match(ARGV[2] or '', '^%d+$') then
  return redis.error_reply('ESNNUDGE nudge_addresses: ARGV[1] and ARGV[2] must be numbers')
end
if (#ARGV - 2) % 3 ~= 0 then
  return redis.error_reply('ESNNUDGE nudge_addresses: entries come in triples')
end
for i = 3, #ARGV, 3 do
  if ARGV[i] == '' or not string.match(ARGV[i + 1], '^%d+$') then
    return redis.error_reply('ESNNUDGE nudge_addresses: a person and an updated time')
  end
end
local written = 0
for i = 3, #ARGV, 3 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  local old_updated = old and tonumber(string.match(old, '"updated":(%d+)')) or -1
  if tonumber(ARGV[i + 1]) >= old_updated then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    written = written + 1
  end
end
local pos = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') or 0
if tonumber(ARGV[2]) > pos then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return written
