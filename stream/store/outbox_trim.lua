-- Drop the head of a flag outbox up to a sequence number: the records a committed Kafka
-- transaction holds. By sequence, not by count, so that a stale publisher trimming late (paused
-- between its commit and its trim while another took over and trimmed further) cannot remove
-- records that were never sent.
-- The highest sequence trimmed is kept (KEYS[2]): outbox_reconcile.lua refuses a caller whose
-- view of the topic is older than that.
-- KEYS: 1 outbox list ("seq\trecord" entries, ascending seq), 2 published seq
-- ARGV: 1 last published sequence number
-- Returns how many entries were removed.
if not string.match(ARGV[1] or '', '^%d+$') then
  return redis.error_reply('outbox_trim: ARGV[1] must be a number')
end
local last = tonumber(ARGV[1])
local published = redis.call('GET', KEYS[2]) or '0'
if not string.match(published, '^%d+$') then
  return redis.error_reply('outbox_trim: the published seq ' .. KEYS[2] .. ' is not a number')
end
if last > tonumber(published) then
  redis.call('SET', KEYS[2], last)
end
local removed = 0
while true do
  local head = redis.call('LRANGE', KEYS[1], 0, 999)
  local drop = 0
  for _, entry in ipairs(head) do
    local seq = tonumber(string.match(entry, '^(%d+)\t'))
    if seq == nil or seq > last then
      break
    end
    drop = drop + 1
  end
  if drop > 0 then
    redis.call('LTRIM', KEYS[1], drop, -1)
    removed = removed + drop
  end
  if drop < #head or #head < 1000 then
    return removed
  end
end
