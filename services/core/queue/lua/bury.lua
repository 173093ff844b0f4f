-- bury: move leased tasks to their priority's dead-letter list; the message stays for redrive.
-- KEYS: processing, tokens, dlq:critical, dlq:high, dlq:default, dlq:low
-- ARGV: groups of 3: id, token, priorityIndex
-- Returns: one integer per task: 1 = buried, 0 = stale token (nothing changed)
local out = {}
for i = 1, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('RPUSH', KEYS[3 + tonumber(ARGV[i + 2])], id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
