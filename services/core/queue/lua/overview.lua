-- overview: what GET /queues reports from Redis for one tenant, in one step: per priority its
-- ready tasks and when the oldest became ready, its leases held, the last minute's counts, and the
-- live workers with their slots.
-- KEYS: workers (1), worker slots (2), ready_at (3), tenant block (4-19), rates prefix (20)
-- ARGV: tenant
-- Returns: { nowMs, ready×4, oldestReadyAtMs×4 (0 = none), running, then per priority 1..4 the
--            counts of enqueued, succeeded, retried, dead, cancelled (20 numbers), then the
--            live workers: their count, and groups of 2: id, slots (0 = not told) }
-- @include bulk
-- @include tenants
-- @include oldest
tenantKeys(4)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tenant = ARGV[1]
local out = { now }
for p = 1, 4 do out[#out + 1] = redis.call('LLEN', listKey(p, tenant)) end
for p = 1, 4 do out[#out + 1] = oldestReady(listKey(p, tenant), KEYS[3]) end
out[#out + 1] = tonumber(redis.call('HGET', TK.running, tenant) or '0')
local KINDS = { 'enqueued', 'succeeded', 'retried', 'dead', 'cancelled' }
local fields = {}
for p = 0, 3 do
  for _, kind in ipairs(KINDS) do fields[#fields + 1] = tenant .. '|' .. p .. '|' .. kind end
end
local sums = {}
for i = 1, #fields do sums[i] = 0 end
local bucket = math.floor(now / 10000)
for b = bucket - 5, bucket do
  local got = redis.call('HMGET', KEYS[20] .. b, unpack(fields))
  for i = 1, #fields do sums[i] = sums[i] + tonumber(got[i] or '0') end
end
for i = 1, #sums do out[#out + 1] = sums[i] end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
out[#out + 1] = #live
local slots = hmget(KEYS[2], live)
for i, id in ipairs(live) do
  out[#out + 1] = id
  out[#out + 1] = tonumber(slots[i] or '0')
end
return out
