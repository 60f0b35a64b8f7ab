-- One step of a nudge delivery, atomically with the person's window, the channel's daily cap,
-- the audit entry and the effect entry. Two operations:
--   claim: a due pending delivery (or, with resend, a send whose lease ran out) becomes
--     "sending", unless the person was nudged for another flag within the window or the
--     channel's cap for the day is spent (then it is settled as suppressed). Only one caller
--     gets a delivery: the claim is what fences two nudge processes (or a zombie) apart.
--   settle: a delivery in the state the caller expects (and, for a send, at the attempt it
--     claimed) gets its outcome, or goes back to pending for a retry at next_due.
-- Arguments are checked before anything is written.
-- KEYS: 1 deliveries, 2 due, 3 last nudged, 4 cap counter, 5 audit, 6 effect, 7 open:<person>
-- ARGV claim:  1 'claim', 2 id, 3 now, 4 window ms, 5 cap (0: none), 6 lease ms,
--              7 audit min id ms, 8 resend (0|1)
-- ARGV settle: 1 'settle', 2 id, 3 now, 4 outcome, 5 reason, 6 expected state,
--              7 expected attempts ('' any), 8 next due ms (0: final), 9 audit min id ms
-- Returns JSON {result, reason?, attempts?}.
local function fail(msg)
  return redis.error_reply('ESNNUDGE nudge_delivery: ' .. msg)
end
local op, id = ARGV[1], ARGV[2]
if op ~= 'claim' and op ~= 'settle' then
  return fail('ARGV[1] must be claim or settle')
end
if type(id) ~= 'string' or id == '' then
  return fail('ARGV[2] must be a delivery id')
end
local numbers = op == 'claim' and {3, 4, 5, 6, 7, 8} or {3, 8, 9}
for _, i in ipairs(numbers) do
  if not string.match(ARGV[i] or '', '^%d+$') then
    return fail('ARGV[' .. i .. '] must be a number')
  end
end
if op == 'settle' and not string.match(ARGV[4] or '', '^[a-z_]+$') then
  return fail('ARGV[4] must be an outcome name')
end
local now = tonumber(ARGV[3])
local raw = redis.call('HGET', KEYS[1], id)
if not raw then
  return cjson.encode({result = 'gone'})
end
local entry = cjson.decode(raw)
if entry.person == nil or entry.event_id == nil then
  return fail('delivery ' .. id .. ' has no person or event id')
end

-- Who was nudged and who was not, for the effect figure (effect.py): one entry a flag.
local NOT_NUDGED = {window = true, opted_out = true, capped = true}
local function record_effect(outcome)
  local eraw = redis.call('HGET', KEYS[6], entry.event_id)
  if not eraw then
    return
  end
  local effect = cjson.decode(eraw)
  if outcome == 'sent' then
    effect.group = 'nudged'
  elseif NOT_NUDGED[outcome] and effect.group ~= 'nudged' then
    effect.group = 'not_nudged'
  else
    return
  end
  effect.decided = now
  redis.call('HSET', KEYS[6], entry.event_id, cjson.encode(effect))
end

local function finish(outcome, reason, audit_min)
  entry.state = outcome
  entry.reason = reason
  entry.settled = now
  redis.call('HSET', KEYS[1], id, cjson.encode(entry))
  redis.call('ZREM', KEYS[2], id)
  redis.call('SREM', KEYS[7], id)
  local line = {
    at = now, who = entry.person, kind = entry.kind, event_id = entry.event_id,
    channel = entry.channel, template = entry.template, outcome = outcome,
    reason = reason, attempts = entry.attempts or 0,
  }
  redis.call('XADD', KEYS[5], 'MINID', '~', audit_min, '*', 'e', cjson.encode(line))
  record_effect(outcome)
end

if op == 'claim' then
  local window, cap, lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  local resend = entry.state == 'sending' and ARGV[8] == '1' and (entry.lease or 0) <= now
  if not resend and (entry.state ~= 'pending' or (entry.due or 0) > now) then
    return cjson.encode({result = 'busy', reason = entry.state})
  end
  if not resend then
    local last = redis.call('HGET', KEYS[3], entry.person)
    if last then
      local last_event, last_ms = string.match(last, '^(.*)\t(%d+)$')
      if last_event and last_event ~= entry.event_id and now - tonumber(last_ms) < window then
        finish('window', 'nudged within the window', ARGV[7])
        return cjson.encode({result = 'suppressed', reason = 'window'})
      end
    end
    if cap > 0 and not entry.counted then
      local used = tonumber(redis.call('GET', KEYS[4]) or '0') or 0
      if used >= cap then
        finish('capped', 'daily cap of the channel reached', ARGV[7])
        return cjson.encode({result = 'suppressed', reason = 'capped'})
      end
    end
  end
  if not entry.counted then
    redis.call('INCR', KEYS[4])
    redis.call('EXPIRE', KEYS[4], 3 * 86400)
    entry.counted = true
  end
  entry.state = 'sending'
  entry.attempts = (entry.attempts or 0) + 1
  entry.lease = now + lease
  redis.call('HSET', KEYS[1], id, cjson.encode(entry))
  redis.call('ZADD', KEYS[2], entry.lease, id)
  redis.call('HSET', KEYS[3], entry.person, entry.event_id .. '\t' .. now)
  return cjson.encode({result = 'claimed', attempts = entry.attempts, resend = resend})
end

-- settle
if entry.state ~= ARGV[6] or (ARGV[7] ~= '' and tostring(entry.attempts or 0) ~= ARGV[7]) then
  return cjson.encode({result = 'fenced', reason = entry.state})
end
local next_due = tonumber(ARGV[8])
if next_due > 0 then
  entry.state = 'pending'
  entry.due = next_due
  entry.last_error = ARGV[5]
  if ARGV[4] == 'failed' then
    entry.failures = (entry.failures or 0) + 1
  end
  redis.call('HSET', KEYS[1], id, cjson.encode(entry))
  redis.call('ZADD', KEYS[2], next_due, id)
  local line = {
    at = now, who = entry.person, kind = entry.kind, event_id = entry.event_id,
    channel = entry.channel, template = entry.template, outcome = ARGV[4],
    reason = ARGV[5], attempts = entry.attempts or 0,
  }
  redis.call('XADD', KEYS[5], 'MINID', '~', ARGV[9], '*', 'e', cjson.encode(line))
  return cjson.encode({result = 'retry'})
end
finish(ARGV[4], ARGV[5], ARGV[9])
return cjson.encode({result = 'settled'})
