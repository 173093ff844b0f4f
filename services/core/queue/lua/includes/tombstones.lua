-- tombstones (include): tasks an operator cancelled, id → ms (Redis clock) of the cancel. A
-- tombstoned task is never made ready again by enqueue (a reconciler that read it as waiting just
-- before the cancel committed), and a lease that ends on it forgets the task instead of queueing,
-- retrying or burying it. An operator's retry lifts it (requeue). Entries older than
-- TOMBSTONE_MS are pruned by cancel: the races they guard last milliseconds.
local TOMBSTONE_MS = 600000
local tombstoneKey, tombstonesAny

local function useTombstones(key)
  tombstoneKey = key
end

-- Whether `id` is tombstoned; one EXISTS per call while there are none (the usual case).
local function tombstoned(id)
  if tombstonesAny == nil then tombstonesAny = redis.call('EXISTS', tombstoneKey) == 1 end
  return tombstonesAny and redis.call('ZSCORE', tombstoneKey, id) ~= false
end
