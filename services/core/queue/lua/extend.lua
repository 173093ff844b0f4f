-- extend: push the deadline of leases that are still held by the caller (heartbeat).
-- KEYS: processing, tokens
-- ARGV: visibilityMs, then pairs id, token
-- Returns: one integer per pair: 1 = extended, 0 = lease lost (token changed or task not leased)
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[i + 1] and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
