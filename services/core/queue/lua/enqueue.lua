-- enqueue: index tasks as ready (or as due later, in their retry set), unless already indexed, so
-- a repeated push (API replay, reconciler) never duplicates a task.
-- KEYS: q:critical..q:low (1-4), msg (5), meta (6), attempts (7), ready_at (8), retry:critical..retry:low (9-12),
--       ready channel (13; a pub/sub channel, not a key, listed so the script names everything it touches)
-- ARGV: groups of 6: id, priorityIndex (0-3), maxAttempts, messageJson, attemptsSoFar, dueAtMs (0 = now)
-- Returns: one integer per task: 1 = indexed, 0 = already indexed
-- Publishes the number of tasks made ready on the ready channel, so idle workers wake at once.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local ready = 0
for i = 1, #ARGV, 6 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[6], id) == 1 then
    out[#out + 1] = 0
  else
    local p = tonumber(ARGV[i + 1])
    local due = tonumber(ARGV[i + 5])
    redis.call('HSET', KEYS[5], id, ARGV[i + 3])
    redis.call('HSET', KEYS[6], id, p .. ':' .. ARGV[i + 2])
    redis.call('HSET', KEYS[7], id, ARGV[i + 4])
    if due > now then
      redis.call('ZADD', KEYS[9 + p], due, id)
    else
      redis.call('HSET', KEYS[8], id, now)
      redis.call('RPUSH', KEYS[p + 1], id)
      ready = ready + 1
    end
    out[#out + 1] = 1
  end
end
if ready > 0 then redis.call('PUBLISH', KEYS[13], ready) end
return out
