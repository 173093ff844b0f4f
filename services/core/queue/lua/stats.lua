-- stats: a consistent snapshot of the queue for metrics, read in one step.
-- KEYS: q:critical..q:low (1-4), retry:critical..retry:low (5-8), dlq:critical..dlq:low (9-12),
--       processing (13), ready_at (14), workers (15)
-- ARGV: (none)
-- Returns: { nowMs, ready×4, retrying×4, dead×4, processing, oldestReadyAtMs×4 (0 = empty), liveWorkers }
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = { now }
for i = 1, 4 do out[#out + 1] = redis.call('LLEN', KEYS[i]) end
for i = 5, 8 do out[#out + 1] = redis.call('ZCARD', KEYS[i]) end
for i = 9, 12 do out[#out + 1] = redis.call('LLEN', KEYS[i]) end
out[#out + 1] = redis.call('ZCARD', KEYS[13])
for i = 1, 4 do
  local head = redis.call('LINDEX', KEYS[i], 0)
  local ready = 0
  if head then ready = tonumber(redis.call('HGET', KEYS[14], head) or '0') or 0 end
  out[#out + 1] = ready
end
-- Workers announce themselves with a score = the time their announcement lapses.
redis.call('ZREMRANGEBYSCORE', KEYS[15], '-inf', now)
out[#out + 1] = redis.call('ZCARD', KEYS[15])
return out
