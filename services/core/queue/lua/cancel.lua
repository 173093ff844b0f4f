-- cancel: an operator cancels tasks Postgres shows waiting or running (the caller holds their rows
-- locked). A task waiting in Redis (ready, due for a retry, or dead-lettered) is removed and
-- forgotten; a leased one is left to its holder, which is told through `channel` to abort it (the
-- heartbeat checks the tombstone too), as is one Redis does not hold (it may have lost the lease). Every id is tombstoned (see includes/tombstones.lua).
-- KEYS: as in placement (1-26), tombstones (27), rates prefix (28)
-- ARGV: channel, then ids
-- Returns: one integer per id: 2 = leased (its holder was told), 1 = removed, 0 = Redis did not hold it
-- @include bulk
-- @include tenants
-- @include placement
-- @include tombstones
-- @include rates
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[27], '-inf', now - TOMBSTONE_MS)
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  redis.call('ZADD', KEYS[27], now, id)
  local known = redis.call('HGET', KEYS[3], id)
  if known then
    local kp, _, ktenant = parseMeta(known)
    countRate(ktenant, kp, 'cancelled')
  end
  if redis.call('ZSCORE', KEYS[1], id) then
    redis.call('PUBLISH', ARGV[1], id)
    out[#out + 1] = 2
  else
    local meta = redis.call('HGET', KEYS[3], id)
    if meta then
      local p, _, tenant = parseMeta(meta)
      -- A tenant whose list this empties stays in its ring until a lease finds the list empty.
      -- From the tail: the tasks operators cancel are most often the newest (a runaway batch).
      redis.call('LREM', listKey(p + 1, tenant), -1, id)
      redis.call('ZREM', KEYS[7 + p], id)
      redis.call('LREM', KEYS[11 + p], -1, id)
      redis.call('HDEL', KEYS[5], id)
      forget(id)
      out[#out + 1] = 1
    else
      -- Redis lost it (or never had it yet): a worker may still run it from before.
      redis.call('PUBLISH', ARGV[1], id)
      out[#out + 1] = 0
    end
  end
end
flushRates(KEYS[28], now)
return out
