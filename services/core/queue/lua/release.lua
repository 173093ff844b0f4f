-- release: hand leased tasks back to the front of their queue without counting the attempt
-- (graceful shutdown, or Postgres unavailable when the lease was taken).
-- KEYS: processing, tokens, attempts, q:critical, q:high, q:default, q:low, doorbell (8)
-- ARGV: groups of 3: id, token, priorityIndex
-- Returns: one integer per task: 1 = released, 0 = stale token (nothing changed)
-- @include fenced
-- @include doorbell
local released = 0
local out = forEachHeld(KEYS[1], KEYS[2], 3, function(id, i)
  redis.call('HINCRBY', KEYS[3], id, -1)
  redis.call('LPUSH', KEYS[4 + tonumber(ARGV[i + 2])], id)
  released = released + 1
end)
-- Idle workers lease only when told that work is ready (polling is the fallback).
if released > 0 then ring(KEYS[8]) end
return out
