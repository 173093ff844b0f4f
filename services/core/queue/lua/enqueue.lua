-- enqueue: index tasks as ready (or as due later, in their retry set), unless already indexed, so
-- a repeated push (API replay, reconciler) never duplicates a task.
-- KEYS: q:critical..q:low (1-4), msg (5), meta (6), attempts (7), ready_at (8), retry:critical..retry:low (9-12),
--       doorbell (13)
-- ARGV: groups of 6: id, priorityIndex (0-3), maxAttempts, messageJson, attemptsSoFar, dueAtMs (0 = now)
-- Returns: one integer per task: 1 = indexed, 0 = already indexed (or earlier in this call)
-- Rings the doorbell when tasks became ready, so an idle worker wakes at once.
-- @include bulk
-- @include doorbell
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = argvIds(6)
local known = hmget(KEYS[6], ids)
local seen = {}
local msg, meta, attempts, readyAt = {}, {}, {}, {}
local ready, later = { {}, {}, {}, {} }, { {}, {}, {}, {} }
local out = {}
local readyCount = 0
for j, id in ipairs(ids) do
  if known[j] or seen[id] then
    out[j] = 0
  else
    seen[id] = true
    local i = (j - 1) * 6 + 1
    local p = tonumber(ARGV[i + 1])
    local due = tonumber(ARGV[i + 5])
    msg[#msg + 1] = id
    msg[#msg + 1] = ARGV[i + 3]
    meta[#meta + 1] = id
    meta[#meta + 1] = p .. ':' .. ARGV[i + 2]
    attempts[#attempts + 1] = id
    attempts[#attempts + 1] = ARGV[i + 4]
    if due > now then
      local z = later[p + 1]
      z[#z + 1] = due
      z[#z + 1] = id
    else
      readyAt[#readyAt + 1] = id
      readyAt[#readyAt + 1] = now
      local q = ready[p + 1]
      q[#q + 1] = id
      readyCount = readyCount + 1
    end
    out[j] = 1
  end
end
bulk('HSET', KEYS[5], msg)
bulk('HSET', KEYS[6], meta)
bulk('HSET', KEYS[7], attempts)
bulk('HSET', KEYS[8], readyAt)
for p = 1, 4 do
  bulk('RPUSH', KEYS[p], ready[p])
  bulk('ZADD', KEYS[8 + p], later[p])
end
if readyCount > 0 then ring(KEYS[13]) end
return out
