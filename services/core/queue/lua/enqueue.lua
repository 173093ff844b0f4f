-- enqueue: index tasks as ready (or as due later, in their retry set), unless already indexed, so
-- a repeated push (API replay, reconciler) never duplicates a task. A ready task joins its
-- tenant's list at its priority (see includes/tenants.lua).
-- KEYS: msg (1), meta (2), attempts (3), ready_at (4), retry:critical..retry:low (5-8), doorbell (9),
--       tenant block (10-25), tombstones (26), rates prefix (27)
-- ARGV: groups of 7: id, priorityIndex (0-3), maxAttempts, messageJson, attemptsSoFar, dueAtMs (0 = now), tenant
-- Returns: one integer per task: 1 = indexed, 0 = already indexed (or earlier in this call, or
-- tombstoned: an operator cancelled it, see includes/tombstones.lua); then one more: the due time
-- of a task due later that is now the earliest of its retry set (0: none), for the caller to
-- announce to the retry pumps (they would otherwise learn of it at their next scan).
-- Rings the doorbell when tasks a worker may lease now became ready, so an idle worker wakes at once.
-- @include bulk
-- @include doorbell
-- @include tenants
-- @include tombstones
-- @include rates
tenantKeys(10)
useTombstones(KEYS[26])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = argvIds(7)
local known = hmget(KEYS[2], ids)
local seen = {}
local msg, meta, attempts, readyAt = {}, {}, {}, {}
local later = { {}, {}, {}, {} }
-- Ready ids per (priority, tenant), in first-seen order so each tenant's list stays FIFO.
local groups, addReady = readyGroups()
local out = {}
for j, id in ipairs(ids) do
  if known[j] or seen[id] or tombstoned(id) then
    out[j] = 0
  else
    seen[id] = true
    local i = (j - 1) * 7 + 1
    local p = tonumber(ARGV[i + 1])
    local due = tonumber(ARGV[i + 5])
    local tenant = ARGV[i + 6]
    msg[#msg + 1] = id
    msg[#msg + 1] = ARGV[i + 3]
    meta[#meta + 1] = id
    meta[#meta + 1] = p .. ':' .. ARGV[i + 2] .. ':' .. tenant
    attempts[#attempts + 1] = id
    attempts[#attempts + 1] = ARGV[i + 4]
    if due > now then
      local z = later[p + 1]
      z[#z + 1] = due
      z[#z + 1] = id
    else
      readyAt[#readyAt + 1] = id
      readyAt[#readyAt + 1] = now
      addReady(p + 1, tenant, id)
    end
    out[j] = 1
    -- A new task (a re-index of one that ran before is not a new arrival).
    if ARGV[i + 4] == '0' then countRate(tenant, p, 'enqueued') end
  end
end
bulk('HSET', KEYS[1], msg)
bulk('HSET', KEYS[2], meta)
bulk('HSET', KEYS[3], attempts)
bulk('HSET', KEYS[4], readyAt)
local earliest = 0
for p = 1, 4 do
  local z = later[p]
  if #z > 0 then
    local soonest = z[1]
    for i = 3, #z, 2 do if z[i] < soonest then soonest = z[i] end end
    local head = redis.call('ZRANGE', KEYS[4 + p], 0, 0, 'WITHSCORES')
    if (not head[2] or soonest < tonumber(head[2])) and (earliest == 0 or soonest < earliest) then earliest = soonest end
    bulk('ZADD', KEYS[4 + p], z)
  end
end
local leasable = false
for _, g in ipairs(groups) do
  if pushReady(g.p, g.tenant, g.ids, false) then leasable = true end
end
if leasable then ring(KEYS[9]) end
flushRates(KEYS[27], now)
out[#out + 1] = earliest
return out
