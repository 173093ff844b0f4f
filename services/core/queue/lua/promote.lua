-- promote: move retries whose due time (Redis clock) has come back to the tail of their queue.
-- KEYS: retry:critical..retry:low (1-4), q:critical..q:low (5-8), ready_at (9), doorbell (10)
-- ARGV: limit per priority
-- Returns: { moved per priority (critical, high, default, low), ms until the next retry still
--           waiting is due (-1 = none) }, so the caller can come back exactly then.
-- @include bulk
-- @include doorbell
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local moved = 0
for p = 1, 4 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[p], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
  local readyAt = {}
  for _, id in ipairs(ids) do
    readyAt[#readyAt + 1] = id
    readyAt[#readyAt + 1] = now
  end
  bulk('ZREM', KEYS[p], ids)
  bulk('RPUSH', KEYS[4 + p], ids)
  bulk('HSET', KEYS[9], readyAt)
  out[p] = #ids
  moved = moved + #ids
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
if moved > 0 then ring(KEYS[10]) end
return out
