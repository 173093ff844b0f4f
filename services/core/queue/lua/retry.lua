-- retry: move leased tasks to their priority's retry set, due after a delay (Redis clock).
-- KEYS: processing, tokens, retry:critical, retry:high, retry:default, retry:low
-- ARGV: groups of 4: id, token, priorityIndex, delayMs
-- Returns: one integer per task: 1 = scheduled, 0 = stale token (nothing changed)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #ARGV, 4 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZADD', KEYS[3 + tonumber(ARGV[i + 2])], now + tonumber(ARGV[i + 3]), id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
