-- in-flight: what a true-up reads before it counts Postgres, in one step: the admitted counters,
-- and the admissions still in flight (admitted, their request not yet settled), expired ones
-- (their API stopped before it settled them) dropped first.
-- KEYS: admitted (hash), in flight (zset, see admit.lua)
-- ARGV: none
-- Returns: { admitted as HGETALL's flat list, in-flight members }
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return { redis.call('HGETALL', KEYS[1]), redis.call('ZRANGE', KEYS[2], 0, -1) }
