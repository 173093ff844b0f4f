-- cancel: an operator cancels tasks Postgres shows waiting or running (the caller holds their rows
-- locked). A task waiting in Redis (ready, due for a retry, or dead-lettered) is removed and
-- forgotten; a leased one is left to its holder, which is told through `channel` to abort it (the
-- heartbeat checks the tombstone too), as is one Redis does not hold (it may have lost the lease). Every id is tombstoned (see includes/tombstones.lua).
-- With `abortLeased` 0 (a workflow stopping after a failure: no new step starts, running ones
-- finish), a leased task is left alone: neither told nor tombstoned.
-- KEYS: as in placement (1-30), tombstones (31), rates prefix (32)
-- ARGV: channel, abortLeased (1 or 0), then ids
-- Returns: one integer per id: 2 = leased (its holder was told, with abortLeased 1), 1 = removed, 0 = Redis did not hold it
-- @include bulk
-- @include tenants
-- @include placement
-- @include tombstones
-- @include rates
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[31], '-inf', now - TOMBSTONE_MS)
local abortLeased = ARGV[2] == '1'

local function cancelOne(id)
  if redis.call('ZSCORE', KEYS[1], id) then
    if not abortLeased then return 2 end
    redis.call('ZADD', KEYS[31], now, id)
    local meta = redis.call('HGET', KEYS[3], id)
    if meta then
      local p, _, tenant = parseMeta(meta)
      countRate(tenant, p, 'cancelled')
    end
    redis.call('PUBLISH', ARGV[1], id)
    return 2
  end
  redis.call('ZADD', KEYS[31], now, id)
  local meta = redis.call('HGET', KEYS[3], id)
  if not meta then
    -- Redis lost it (or never had it yet): a worker may still run it from before.
    if abortLeased then redis.call('PUBLISH', ARGV[1], id) end
    return 0
  end
  local p, _, tenant = parseMeta(meta)
  countRate(tenant, p, 'cancelled')
  -- A tenant whose list this empties stays in its ring until a lease finds the list empty.
  -- From the tail: the tasks operators cancel are most often the newest (a runaway batch).
  redis.call('LREM', listKey(p + 1, tenant), -1, id)
  redis.call('ZREM', KEYS[7 + p], id)
  redis.call('LREM', KEYS[11 + p], -1, id)
  redis.call('HDEL', KEYS[5], id)
  forget(id)
  return 1
end

local out = {}
for i = 3, #ARGV do out[#out + 1] = cancelOne(ARGV[i]) end
flushRates(KEYS[32], now)
return out
