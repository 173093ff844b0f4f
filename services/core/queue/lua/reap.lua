-- reap: reclaim leases whose deadline (Redis clock) has passed. The lost attempt counts: a task
-- whose attempts are used up is not put back, so it cannot loop forever.
-- A task with attempts left goes back to the head of its tenant's list at once (should Postgres
-- never hear of the lost attempt, the task simply runs again). One out of attempts stays leased
-- under its token for holdMs more: the reaper records the lost attempt in Postgres first and buries
-- it only then (finish), so a reaper that dies in between leaves it to the next pass instead of
-- leaving Redis with a dead task that Postgres still shows as waiting. So is a workflow step with
-- attempts left ('held'): its workflow may have stopped while it ran, and the reaper stops it
-- before any worker can start it again (or releases it). A lease that ends here counts off its
-- tenant's running attempts.
-- KEYS: processing (1), meta (2), attempts (3), tokens (4), ready_at (5), dlq:critical..dlq:low (6-9),
--       msg (10), doorbell (11), tenant block (12-27), tombstones (28)
-- ARGV: limit, holdMs
-- Returns: flat groups of 7: id, token, attempt, destination ('queued'|'dead'|'held'), priorityIndex, messageJson, tenant
-- @include doorbell
-- @include bulk
-- @include tenants
-- @include tombstones
tenantKeys(12)
useTombstones(KEYS[28])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
local ended = {}
local requeued = 0
-- A workflow step's message names its step (a payload's text can too: decoded to be sure).
local function isStep(message)
  if not string.find(message, '"step":', 1, true) then return false end
  local ok, decoded = pcall(cjson.decode, message)
  return ok and type(decoded) == 'table' and decoded.step ~= nil
end
for _, id in ipairs(ids) do
  local meta = redis.call('HGET', KEYS[2], id)
  local token = redis.call('HGET', KEYS[4], id) or ''
  local attempt = tonumber(redis.call('HGET', KEYS[3], id) or '0')
  local message = redis.call('HGET', KEYS[10], id) or '{}'
  if meta then
    local dest
    local p, maxAttempts, tenant = parseMeta(meta)
    -- Cancelled by an operator: held and buried like a dead one (finish forgets it), never queued again.
    if tombstoned(id) then maxAttempts = 0 end
    if attempt >= maxAttempts and token ~= '' then
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
      dest = 'dead'
    elseif token ~= '' and isStep(message) then
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
      dest = 'held'
    elseif attempt >= maxAttempts then
      -- No token to hold it by (no script leaves a lease without one): buried at once.
      redis.call('ZREM', KEYS[1], id)
      redis.call('RPUSH', KEYS[6 + p], id)
      ended[tenant] = (ended[tenant] or 0) + 1
      dest = 'dead'
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('HDEL', KEYS[4], id)
      pushReady(p + 1, tenant, { id }, true)
      redis.call('HSET', KEYS[5], id, now)
      ended[tenant] = (ended[tenant] or 0) + 1
      requeued = requeued + 1
      dest = 'queued'
    end
    out[#out + 1] = id
    out[#out + 1] = token
    out[#out + 1] = attempt
    out[#out + 1] = dest
    out[#out + 1] = p
    out[#out + 1] = message
    out[#out + 1] = tenant
  else
    -- Its tenant is unknown: the sweep's recount of running attempts corrects the count.
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[4], id)
  end
end
-- Idle workers lease only when told that work is ready (polling is the fallback).
-- Ending the leases unparks their tenants, so what went back to a list is leasable.
if endLeases(ended) or requeued > 0 then ring(KEYS[11]) end
return out
