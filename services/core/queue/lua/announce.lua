-- announce: record that a worker is alive until now + ttlMs (Redis clock); ttlMs 0 withdraws it.
-- KEYS: workers
-- ARGV: workerId, ttlMs
-- Returns: 1
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) <= 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
return 1
