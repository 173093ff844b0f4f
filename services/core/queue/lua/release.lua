-- release: hand leased tasks back to the head of their tenant's list without counting the attempt
-- (graceful shutdown, or Postgres unavailable when the lease was taken), or counting it (a lost
-- attempt the reaper held until Postgres recorded it). A counted one is ready again from now, as a
-- task the reaper queues at once is: its next attempt's wait (and the oldest wait) leaves out the
-- lost one; an uncounted one keeps the time it became ready for the attempt it still waits for.
-- KEYS: processing (1), tokens (2), attempts (3), meta (4), doorbell (5), tenant block (6-21),
--       tombstones (22), msg (23), ready_at (24)
-- ARGV: groups of 4: id, token, priorityIndex, counted (1: the attempt counts)
-- Returns: one integer per task: 1 = released, 0 = stale token (nothing changed)
-- @include fenced
-- @include doorbell
-- @include bulk
-- @include tenants
-- @include tombstones
tenantKeys(6)
useTombstones(KEYS[22])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ended = {}
local out = forEachHeld(KEYS[1], KEYS[2], 4, function(id, i)
  if ARGV[i + 3] ~= '1' then redis.call('HINCRBY', KEYS[3], id, -1) end
  local tenant = tenantOfTask(KEYS[4], id)
  if tombstoned(id) then
    -- Cancelled by an operator while it ran: Postgres ends it `cancelled`; nothing runs it again.
    for _, key in ipairs({ KEYS[23], KEYS[4], KEYS[3], KEYS[24] }) do redis.call('HDEL', key, id) end
  else
    pushReady(tonumber(ARGV[i + 2]) + 1, tenant, { id }, true)
    if ARGV[i + 3] == '1' then redis.call('HSET', KEYS[24], id, now) end
  end
  ended[tenant] = (ended[tenant] or 0) + 1
end)
-- Ending the leases unparks their tenants, so what was handed back is leasable.
endLeases(ended)
-- Idle workers lease only when told that work is ready (polling is the fallback).
if next(ended) then ring(KEYS[5]) end
return out
