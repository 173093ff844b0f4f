-- requeue: an operator puts dead or cancelled tasks back to work with a fresh attempt budget
-- (Postgres has committed it). Whatever Redis still holds of a task (its dead-letter entry, an old
-- message) is replaced, and the task joins the tail of its tenant's ready list, or, a delayed task
-- retried before its run_at, its priority's due-time set at run_at (it starts no earlier).
-- A task leased right now is left alone (its last attempt's end is being written; the reconciler
-- queues it once that is done). So is a tombstoned one: the retry lifted its tombstone before it
-- committed (liftTombstones), so this one is a cancel that came after the retry, and Postgres has
-- the task cancelled again.
-- KEYS: as in placement (1-30), tombstones (31), doorbell (32)
-- ARGV: groups of 7: id, priorityIndex, maxAttempts, messageJson, attemptsSoFar, tenant, dueAtMs (0 = now)
-- Returns: one integer per task: 1 = queued (or due later), 0 = leased or tombstoned (nothing changed)
-- @include bulk
-- @include doorbell
-- @include tenants
-- @include placement
-- @include tombstones
useTombstones(KEYS[31])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local groups, addReady = readyGroups()
local out = {}
for i = 1, #ARGV, 7 do
  local id = ARGV[i]
  if tombstoned(id) or redis.call('ZSCORE', KEYS[1], id) then
    out[#out + 1] = 0
  else
    local old = redis.call('HGET', KEYS[3], id)
    if old then
      local op, _, otenant = parseMeta(old)
      redis.call('LREM', listKey(op + 1, otenant), 0, id)
      redis.call('ZREM', KEYS[7 + op], id)
      redis.call('LREM', KEYS[11 + op], 0, id)
    end
    redis.call('HDEL', KEYS[5], id)
    local p, tenant = tonumber(ARGV[i + 1]), ARGV[i + 5]
    redis.call('HSET', KEYS[2], id, ARGV[i + 3])
    redis.call('HSET', KEYS[3], id, p .. ':' .. ARGV[i + 2] .. ':' .. tenant)
    redis.call('HSET', KEYS[4], id, ARGV[i + 4])
    local due = tonumber(ARGV[i + 6]) or 0
    if due > now then
      redis.call('ZADD', KEYS[7 + p], due, id)
    else
      redis.call('HSET', KEYS[6], id, now)
      addReady(p + 1, tenant, id)
    end
    out[#out + 1] = 1
  end
end
local leasable = false
for _, g in ipairs(groups) do
  if pushReady(g.p, g.tenant, g.ids, false) then leasable = true end
end
if leasable then ring(KEYS[32]) end
return out
