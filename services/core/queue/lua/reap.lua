-- reap: reclaim leases whose deadline (Redis clock) has passed. The lost attempt counts: a task
-- whose attempts are used up goes to its dead-letter list instead of looping forever.
-- KEYS: processing, meta, attempts, tokens, ready_at, q:critical..q:low (6-9), dlq:critical..dlq:low (10-13), msg (14), ready channel (15)
-- ARGV: limit
-- Returns: flat groups of 6: id, expiredToken, attempt, destination ('queued'|'dead'), priorityIndex, messageJson
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
local requeued = 0
for _, id in ipairs(ids) do
  local meta = redis.call('HGET', KEYS[2], id)
  local token = redis.call('HGET', KEYS[4], id) or ''
  local attempt = tonumber(redis.call('HGET', KEYS[3], id) or '0')
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[4], id)
  if meta then
    local sep = string.find(meta, ':', 1, true)
    local p = tonumber(string.sub(meta, 1, sep - 1))
    local maxAttempts = tonumber(string.sub(meta, sep + 1))
    local dest = 'queued'
    if attempt >= maxAttempts then
      redis.call('RPUSH', KEYS[10 + p], id)
      dest = 'dead'
    else
      redis.call('LPUSH', KEYS[6 + p], id)
      redis.call('HSET', KEYS[5], id, now)
      requeued = requeued + 1
    end
    out[#out + 1] = id
    out[#out + 1] = token
    out[#out + 1] = attempt
    out[#out + 1] = dest
    out[#out + 1] = p
    out[#out + 1] = redis.call('HGET', KEYS[14], id) or '{}'
  end
end
-- Idle workers lease only when told that work is ready (polling is the fallback).
if requeued > 0 then redis.call('PUBLISH', KEYS[15], requeued) end
return out
