-- dispatch: store tenants' dispatch settings (weight and running cap) as Postgres has them, for
-- lease.lua. A changed setting may give a parked tenant room, so every parked tenant is put back
-- in its rings then (the next lease parks again those still at their cap).
-- KEYS: tenant dispatch settings (1), doorbell (2), tenant block (3-18), wrr (19)
-- ARGV: default max running (0 = unlimited), then groups of 3: tenant, weight, maxRunning (-1 = the default)
-- Returns: { settings changed, 1 if the settings were there before this call (0: Redis lost them or
--            never had them, so the caller sends every tenant) }
-- Also counts the tenants with settings of their own into wrr's `custom` field, read by every lease
-- (which skips reading settings and running counts while there are none and no default cap).
-- @include doorbell
-- @include bulk
-- @include tenants
tenantKeys(3)
local had = redis.call('HEXISTS', KEYS[1], '*')
-- Whether a stored setting is a tenant's own (not weight 1 with the default cap).
local function isCustom(v)
  return v and v ~= '1:-1'
end
local changed, delta = 0, 0
if redis.call('HGET', KEYS[1], '*') ~= ARGV[1] then
  redis.call('HSET', KEYS[1], '*', ARGV[1])
  changed = changed + 1
end
for i = 2, #ARGV, 3 do
  local value = ARGV[i + 1] .. ':' .. ARGV[i + 2]
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if old ~= value then
    redis.call('HSET', KEYS[1], ARGV[i], value)
    changed = changed + 1
    if isCustom(value) then delta = delta + 1 end
    if isCustom(old) then delta = delta - 1 end
  end
end
if changed > 0 then
  local any = false
  for _, name in ipairs(redis.call('SMEMBERS', TK.parkedSet)) do
    if unpark(name) then any = true end
  end
  if any then ring(KEYS[2]) end
end
-- Kept by the changes this call made: every worker calls this every second, and a recount reads
-- every tenant's setting (50,000 tenants: 48 ms of Redis each call). Counted afresh only when the
-- settings or the count were lost.
if had == 0 or not redis.call('HGET', KEYS[19], 'custom') then
  local custom = 0
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if all[i] ~= '*' and isCustom(all[i + 1]) then custom = custom + 1 end
  end
  redis.call('HSET', KEYS[19], 'custom', custom)
elseif delta ~= 0 then
  redis.call('HINCRBY', KEYS[19], 'custom', delta)
end
return { changed, had }
