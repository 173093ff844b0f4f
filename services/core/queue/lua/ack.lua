-- ack: forget tasks whose outcome is final, only for the current lease holder.
-- KEYS: processing, msg, meta, attempts, tokens, ready_at
-- ARGV: pairs id, token
-- Returns: one integer per pair: 1 = acked, 0 = stale token (nothing changed)
local out = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[5], id) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('HDEL', KEYS[6], id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
