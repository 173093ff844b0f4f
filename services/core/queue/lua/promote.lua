-- promote: move retries whose due time (Redis clock) has come back to the tail of their queue.
-- KEYS: retry:critical..retry:low (1-4), q:critical..q:low (5-8), ready_at (9)
-- ARGV: limit per priority
-- Returns: number moved per priority { critical, high, default, low }
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for p = 1, 4 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[p], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[p], id)
    redis.call('RPUSH', KEYS[4 + p], id)
    redis.call('HSET', KEYS[9], id, now)
  end
  out[p] = #ids
end
return out
