-- Take one flagged-user record into the nudge service's state, behind the partition's fence:
-- new deliveries become pending (once per delivery id: a flag published again changes nothing),
-- and a record that ends the flags (reactivated, withdrawn) cancels the person's pending ones
-- and marks their effect entries as active again. Everything is checked before anything is
-- written, so a refused call leaves the state as it was.
-- KEYS: 1 fences, 2 deliveries, 3 due, 4 open:<person>, 5 audit, 6 effect, 7 peff:<person>
-- ARGV: 1 partition, 2 offset, 3 now ms, 4 plan JSON {person, kind, event_id, at,
--   deliveries: [{id, due, entry}], effect: {...} or null, ends: true|false,
--   audit: [entry, ...] (decisions made at intake: stale, no rule)}, 5 audit min id ms
-- Returns JSON {applied: 0|1, cancelled: [[kind, channel], ...]}.
local function fail(msg)
  return redis.error_reply('ESNNUDGE nudge_intake: ' .. msg)
end
for i = 1, 3 do
  if not string.match(ARGV[i] or '', '^%d+$') then
    return fail('ARGV[' .. i .. '] must be a number')
  end
end
if not string.match(ARGV[5] or '', '^%d+$') then
  return fail('ARGV[5] must be a number')
end
local ok, plan = pcall(cjson.decode, ARGV[4])
if not ok or type(plan) ~= 'table' or type(plan.person) ~= 'string' or plan.person == '' then
  return fail('the plan is not a JSON object with a person')
end
if type(plan.deliveries) ~= 'table' or type(plan.audit) ~= 'table' then
  return fail('the plan needs deliveries and audit lists')
end
for _, d in ipairs(plan.deliveries) do
  if type(d.id) ~= 'string' or type(d.due) ~= 'number' or type(d.entry) ~= 'table' then
    return fail('a delivery needs an id, a due time and an entry')
  end
  if d.entry.state ~= 'pending' or d.entry.person ~= plan.person then
    return fail('a new delivery must be pending and of the plan\'s person')
  end
end
local partition, offset, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local fence = redis.call('HGET', KEYS[1], partition)
if fence and not string.match(fence, '^%-?%d+$') then
  return fail('the fence of partition ' .. partition .. ' is not a number')
end
if fence and tonumber(fence) >= offset then
  return cjson.encode({applied = 0, cancelled = {}})
end

local function audit(entry, outcome, reason)
  local line = {
    at = now, who = entry.person, kind = entry.kind, event_id = entry.event_id,
    channel = entry.channel, template = entry.template, outcome = outcome,
    reason = reason, attempts = entry.attempts or 0,
  }
  redis.call('XADD', KEYS[5], 'MINID', '~', ARGV[5], '*', 'e', cjson.encode(line))
end

local cancelled = {}
if plan.ends then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    local raw = redis.call('HGET', KEYS[2], id)
    if raw then
      local entry = cjson.decode(raw)
      -- A send in progress cannot be taken back; only what waits is cancelled.
      if entry.state == 'pending' then
        entry.state = 'cancelled'
        entry.settled = now
        redis.call('HSET', KEYS[2], id, cjson.encode(entry))
        redis.call('ZREM', KEYS[3], id)
        redis.call('SREM', KEYS[4], id)
        audit(entry, 'cancelled', plan.kind)
        table.insert(cancelled, {entry.kind, entry.channel})
        local eraw = redis.call('HGET', KEYS[6], entry.event_id)
        if eraw then
          local effect = cjson.decode(eraw)
          if effect.group == 'pending' then
            effect.group = 'cancelled'
            redis.call('HSET', KEYS[6], entry.event_id, cjson.encode(effect))
          end
        end
      end
    end
  end
  -- The person is active again (or gone): every effect entry waiting for that gets its time.
  if plan.kind == 'reactivated' then
    for _, event_id in ipairs(redis.call('SMEMBERS', KEYS[7])) do
      local eraw = redis.call('HGET', KEYS[6], event_id)
      if eraw then
        local effect = cjson.decode(eraw)
        if effect.reactivated == nil or effect.reactivated == cjson.null then
          effect.reactivated = plan.at
          redis.call('HSET', KEYS[6], event_id, cjson.encode(effect))
        end
      end
    end
  end
  redis.call('DEL', KEYS[7])
end

for _, d in ipairs(plan.deliveries) do
  if redis.call('HSETNX', KEYS[2], d.id, cjson.encode(d.entry)) == 1 then
    redis.call('ZADD', KEYS[3], d.due, d.id)
    redis.call('SADD', KEYS[4], d.id)
  end
end
if type(plan.effect) == 'table' and type(plan.event_id) == 'string' then
  if redis.call('HSETNX', KEYS[6], plan.event_id, cjson.encode(plan.effect)) == 1 then
    redis.call('SADD', KEYS[7], plan.event_id)
  end
end
for _, entry in ipairs(plan.audit) do
  audit(entry, entry.outcome, entry.reason)
end
redis.call('HSET', KEYS[1], partition, offset)
return cjson.encode({applied = 1, cancelled = cancelled})
