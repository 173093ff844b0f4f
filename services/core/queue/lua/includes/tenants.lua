-- tenants (include, after bulk): per-tenant ready lists and the fair-dispatch state (docs/fair-dispatch.md).
-- Ready tasks wait in one list per priority and tenant, `<list prefix><priority>:<tenant>`. Those
-- names are built here from the prefix passed in KEYS: it carries the namespace's hash tag, so on
-- Redis Cluster every list built from it lives in the slot the script was routed to.
-- A script passes its tenant block of 16 KEYS starting at `at` and calls tenantKeys(at) first:
--   list prefix (+0), ring:critical..ring:low (+1..+4), parked:critical..parked:low (+5..+8),
--   parked tenants (+9), running (+10), tenants (+11), left:critical..left:low (+12..+15)
-- ring:<p>: tenants with ready work at p, scored by their pass (stride scheduling); parked:<p>: the
-- same for tenants held at their running cap; running: tenant → leases held; tenants: every tenant
-- that may have a ready list (for the sweep, which cannot list keys); left:<p>: tenants that left
-- ring p, scored by the pass they left with, until the round's lowest pass (roundMin) reaches it.
local PRIORITY_NAMES = { 'critical', 'high', 'default', 'low' }
local TK

local function tenantKeys(at)
  TK = {
    prefix = KEYS[at],
    ring = { KEYS[at + 1], KEYS[at + 2], KEYS[at + 3], KEYS[at + 4] },
    parked = { KEYS[at + 5], KEYS[at + 6], KEYS[at + 7], KEYS[at + 8] },
    parkedSet = KEYS[at + 9],
    running = KEYS[at + 10],
    tenants = KEYS[at + 11],
    left = { KEYS[at + 12], KEYS[at + 13], KEYS[at + 14], KEYS[at + 15] },
  }
end

-- The ready list of tenant `tenant` at priority `p` (1-based).
local function listKey(p, tenant)
  return TK.prefix .. PRIORITY_NAMES[p] .. ':' .. tenant
end

-- meta is "priorityIndex:maxAttempts:tenant" (older entries lack the tenant: `default`).
local function parseMeta(meta)
  local a = string.find(meta, ':', 1, true)
  local b = string.find(meta, ':', a + 1, true)
  if not b then return tonumber(string.sub(meta, 1, a - 1)), tonumber(string.sub(meta, a + 1)), 'default' end
  return tonumber(string.sub(meta, 1, a - 1)), tonumber(string.sub(meta, a + 1, b - 1)), string.sub(meta, b + 1)
end

-- The tenant of task `id` by its meta in hash `metaKey` (`default` when Redis has no meta for it).
local function tenantOfTask(metaKey, id)
  local meta = redis.call('HGET', metaKey, id)
  if not meta then return 'default' end
  local _, _, owner = parseMeta(meta)
  return owner
end

local joinCache = {}
-- Tenants added to the registry in this call, and whether any tenant is parked (read once: no
-- script parks a tenant and then pushes).
local registered, parkedAny = {}, nil
-- The lowest pass in ring p, or nil when it is empty.
local function ringMin(p)
  local head = redis.call('ZRANGE', TK.ring[p], 0, 0, 'WITHSCORES')
  return head[2] and tonumber(head[2]) or nil
end

-- The lowest pass of the round at p: the ring's, else (only parked tenants left) the parked
-- set's, since a parked tenant comes back at its pass and must not find a new round far below it.
local function roundMin(p)
  local low = ringMin(p)
  if low then return low end
  local head = redis.call('ZRANGE', TK.parked[p], 0, 0, 'WITHSCORES')
  return head[2] and tonumber(head[2]) or nil
end

-- The pass a tenant new to ring p starts at: just below every tenant in it, so it is served before
-- any of them gets another turn (a joiner is not backlogged: it waited for nothing). Tenants that
-- join in one call start level. Passes only compare within a round (a ring with its parked set)
-- that stays non-empty, so an empty one forgets the passes tenants left it with: a new round
-- starts level.
local function joinPass(p)
  if joinCache[p] == nil then
    local low = roundMin(p)
    if not low then redis.call('DEL', TK.left[p]) end
    joinCache[p] = (low or 1) - 1
  end
  return joinCache[p]
end

-- The pass `tenant` (re)joins ring p at: the pass it left with, when the ring's lowest has not
-- reached it yet, else joinPass. So a tenant gains nothing by emptying its list (it comes back
-- where it would have stood), while one idle for long joins at the front.
local function rejoinPass(p, tenant)
  local pass = joinPass(p)
  local left = redis.call('ZSCORE', TK.left[p], tenant)
  if left and tonumber(left) > pass then return tonumber(left) end
  return pass
end

-- Records the passes tenants left ring p with (`gone`: pass, tenant, … after the ring's own writes)
-- and forgets those the round's lowest pass has reached, which no longer matter: at most one entry
-- per tenant, and only while it is ahead of every tenant with work.
local function rememberLeft(p, gone)
  local low = roundMin(p)
  if not low then
    redis.call('DEL', TK.left[p])
    return
  end
  local keep = {}
  for i = 1, #gone, 2 do
    if gone[i] > low then
      keep[#keep + 1] = gone[i]
      keep[#keep + 1] = gone[i + 1]
    end
  end
  bulk('ZADD', TK.left[p], keep)
  redis.call('ZREMRANGEBYSCORE', TK.left[p], '-inf', low)
end

local function anyParked()
  if parkedAny == nil then parkedAny = redis.call('EXISTS', TK.parkedSet) == 1 end
  return parkedAny
end

local function isParked(tenant)
  return anyParked() and redis.call('SISMEMBER', TK.parkedSet, tenant) == 1
end

-- Makes ids ready for `tenant` at priority `p` (1-based), at the tail or (front) the head of its
-- list. A tenant new to the ring joins just below every tenant in it (joinPass), so it is served
-- before any of them gets another turn whatever they hold, unless it left the ring lately
-- (rejoinPass); one parked at its running cap stays parked. A list that was
-- not empty has its tenant in the ring or parked set already (the sweep repairs a loss), so a
-- tenant with a backlog costs one push. Returns true when a worker may lease them now (the tenant
-- is not parked), so the caller rings the doorbell.
local function pushReady(p, tenant, ids, front)
  if #ids == 0 then return false end
  local key = listKey(p, tenant)
  local len = 0
  for i = 1, #ids, 4000 do
    if front then
      len = redis.call('LPUSH', key, unpack(ids, i, math.min(i + 3999, #ids)))
    else
      len = redis.call('RPUSH', key, unpack(ids, i, math.min(i + 3999, #ids)))
    end
  end
  if len > #ids then return not isParked(tenant) end
  if isParked(tenant) then
    redis.call('ZADD', TK.parked[p], 'NX', rejoinPass(p, tenant), tenant)
    return false
  end
  if redis.call('ZADD', TK.ring[p], 'NX', rejoinPass(p, tenant), tenant) == 1 and not registered[tenant] then
    redis.call('SADD', TK.tenants, tenant)
    registered[tenant] = true
  end
  return true
end

-- Ready ids gathered per priority (1-based) and tenant, in arrival order, so each group costs one
-- pushReady: returns the groups ({ p, tenant, ids }, in first-arrival order) and the adder.
local function readyGroups()
  local groups, byKey = {}, {}
  local function add(p, tenant, id)
    local key = p .. ':' .. tenant
    local g = byKey[key]
    if not g then
      g = { p = p, tenant = tenant, ids = {} }
      byKey[key] = g
      groups[#groups + 1] = g
    end
    g.ids[#g.ids + 1] = id
  end
  return groups, add
end

-- Puts a parked tenant back into the rings it left (at its pass, or the ring's lowest if that is
-- later: being held at its cap earns it no credit). Returns true when it was parked.
local function unpark(tenant)
  if redis.call('SREM', TK.parkedSet, tenant) == 0 then return false end
  for p = 1, 4 do
    local pass = redis.call('ZSCORE', TK.parked[p], tenant)
    if pass then
      redis.call('ZREM', TK.parked[p], tenant)
      redis.call('ZADD', TK.ring[p], 'NX', math.max(tonumber(pass), ringMin(p) or tonumber(pass)), tenant)
    end
  end
  return true
end

-- Counts leases that ended (tenant → how many) off the running counts, with a few commands per
-- call whatever the number of tenants; a tenant parked at its cap has room again, so it is
-- unparked. Returns true when one was (the caller rings the doorbell).
local function endLeases(ended)
  local names = {}
  for tenant in pairs(ended) do names[#names + 1] = tenant end
  if #names == 0 then return false end
  if #names == 1 then
    -- One tenant (the usual batch): one command.
    local tenant = names[1]
    if redis.call('HINCRBY', TK.running, tenant, -ended[tenant]) <= 0 then redis.call('HDEL', TK.running, tenant) end
    return isParked(tenant) and unpark(tenant)
  end
  local counts = hmget(TK.running, names)
  local set, del = {}, {}
  for i, tenant in ipairs(names) do
    local left = tonumber(counts[i] or '0') - ended[tenant]
    if left > 0 then
      set[#set + 1] = tenant
      set[#set + 1] = left
    else
      del[#del + 1] = tenant
    end
  end
  bulk('HSET', TK.running, set)
  bulk('HDEL', TK.running, del)
  local unparked = false
  if anyParked() then
    for i = 1, #names, 4000 do
      local chunk = { unpack(names, i, math.min(i + 3999, #names)) }
      local parked = redis.call('SMISMEMBER', TK.parkedSet, unpack(chunk))
      for j, tenant in ipairs(chunk) do
        if parked[j] == 1 and unpark(tenant) then unparked = true end
      end
    end
  end
  return unparked
end
