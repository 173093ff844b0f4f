-- release: hand leased tasks back to the front of their queue without counting the attempt
-- (graceful shutdown, or Postgres unavailable when the lease was taken).
-- KEYS: processing, tokens, attempts, q:critical, q:high, q:default, q:low
-- ARGV: groups of 3: id, token, priorityIndex
-- Returns: one integer per task: 1 = released, 0 = stale token (nothing changed)
local out = {}
for i = 1, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HINCRBY', KEYS[3], id, -1)
    redis.call('LPUSH', KEYS[4 + tonumber(ARGV[i + 2])], id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
