-- announce: record that a worker is alive until now + ttlMs (Redis clock), with its task slots;
-- ttlMs 0 withdraws it.
-- KEYS: workers, worker slots
-- ARGV: workerId, ttlMs, slots (0: not told)
-- Returns: 1
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) <= 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  if ARGV[3] ~= '0' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
  -- Workers gone for good (their announcement lapsed long ago) leave their slots behind; a few are
  -- dropped here, so the hash stays as small as the set of live workers.
  for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 3600000, 'LIMIT', 0, 10)) do
    redis.call('ZREM', KEYS[1], gone)
    redis.call('HDEL', KEYS[2], gone)
  end
end
return 1
