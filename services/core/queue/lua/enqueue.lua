-- enqueue: index tasks as ready to run, unless already indexed (so repeats never duplicate).
-- KEYS: q:critical, q:high, q:default, q:low, msg, meta, attempts, ready_at
-- ARGV: groups of 5: id, priorityIndex (0-3), maxAttempts, messageJson, attemptsSoFar
-- Returns: one integer per task: 1 = pushed, 0 = already indexed
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #ARGV, 5 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[6], id) == 1 then
    out[#out + 1] = 0
  else
    local p = tonumber(ARGV[i + 1])
    redis.call('HSET', KEYS[5], id, ARGV[i + 3])
    redis.call('HSET', KEYS[6], id, p .. ':' .. ARGV[i + 2])
    redis.call('HSET', KEYS[7], id, ARGV[i + 4])
    redis.call('HSET', KEYS[8], id, now)
    redis.call('RPUSH', KEYS[p + 1], id)
    out[#out + 1] = 1
  end
end
return out
