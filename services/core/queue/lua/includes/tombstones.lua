-- tombstones (include): tasks an operator cancelled, id → ms (Redis clock) of the cancel. A
-- tombstoned task is never made ready again by enqueue (a reconciler that read it as waiting just
-- before the cancel committed), and a lease that ends on it forgets the task instead of queueing,
-- retrying or burying it. An operator's retry lifts it while it holds the task's row in Postgres
-- (liftTombstones), and requeue then leaves alone a task tombstoned again. A tombstone lapses after
-- TOMBSTONE_MS (cancel prunes old ones): the races it guards last milliseconds, and a cancel whose
-- Postgres transaction failed must not keep the reconciler from its task for longer.
local TOMBSTONE_MS = 600000
local tombstoneKey, tombstonesAny, tombstoneSince

local function useTombstones(key)
  tombstoneKey = key
end

-- Whether `id` is tombstoned; one EXISTS per call while there are none (the usual case).
local function tombstoned(id)
  if tombstonesAny == nil then tombstonesAny = redis.call('EXISTS', tombstoneKey) == 1 end
  if not tombstonesAny then return false end
  local at = redis.call('ZSCORE', tombstoneKey, id)
  if not at then return false end
  if tombstoneSince == nil then
    local t = redis.call('TIME')
    tombstoneSince = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - TOMBSTONE_MS
  end
  return tonumber(at) > tombstoneSince
end
