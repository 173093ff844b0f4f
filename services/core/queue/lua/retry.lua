-- retry: move leased tasks to their priority's retry set, due after a delay (Redis clock).
-- KEYS: processing, tokens, retry:critical, retry:high, retry:default, retry:low
-- ARGV: groups of 4: id, token, priorityIndex, delayMs
-- Returns: one integer per task: 1 = scheduled, 0 = stale token (nothing changed)
-- @include fenced
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return forEachHeld(KEYS[1], KEYS[2], 4, function(id, i)
  redis.call('ZADD', KEYS[3 + tonumber(ARGV[i + 2])], now + tonumber(ARGV[i + 3]), id)
end)
