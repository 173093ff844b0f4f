-- promote: move retries whose due time (Redis clock) has come back to the tail of their tenant's
-- list at their priority.
-- KEYS: retry:critical..retry:low (1-4), ready_at (5), doorbell (6), meta (7), tenant block (8-23)
-- ARGV: limit per priority
-- Returns: { moved per priority (critical, high, default, low), ms until the next retry still
--           waiting is due (-1 = none) }, so the caller can come back exactly then.
-- @include bulk
-- @include doorbell
-- @include tenants
tenantKeys(8)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local moved = 0
local leasable = false
for p = 1, 4 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[p], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
  bulk('ZREM', KEYS[p], ids)
  local metas = hmget(KEYS[7], ids)
  local readyAt = {}
  local groups, byTenant = {}, {}
  for i, id in ipairs(ids) do
    -- A retry of a task Redis no longer knows could never run: it is dropped (the reconciler
    -- indexes the task again from Postgres).
    if metas[i] then
      local _, _, tenant = parseMeta(metas[i])
      if not byTenant[tenant] then
        byTenant[tenant] = {}
        groups[#groups + 1] = tenant
      end
      local list = byTenant[tenant]
      list[#list + 1] = id
      readyAt[#readyAt + 1] = id
      readyAt[#readyAt + 1] = now
    end
  end
  for _, tenant in ipairs(groups) do
    if pushReady(p, tenant, byTenant[tenant], false) then leasable = true end
  end
  bulk('HSET', KEYS[5], readyAt)
  out[p] = #readyAt / 2
  moved = moved + #readyAt / 2
end
local nextDue = -1
for p = 1, 4 do
  local head = redis.call('ZRANGE', KEYS[p], 0, 0, 'WITHSCORES')
  if head[2] then
    local inMs = math.max(0, tonumber(head[2]) - now)
    if nextDue < 0 or inMs < nextDue then nextDue = inMs end
  end
end
out[5] = nextDue
-- Idle workers lease only when told that work is ready (polling is the fallback).
if leasable then ring(KEYS[6]) end
return out
