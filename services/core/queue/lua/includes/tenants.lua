-- tenants (include, after bulk): per-tenant ready lists and the fair-dispatch state (docs/fair-dispatch.md).
-- Ready tasks wait in one list per priority and tenant, `<list prefix><priority>:<tenant>`. Those
-- names are built here from the prefix passed in KEYS: it carries the namespace's hash tag, so on
-- Redis Cluster every list built from it lives in the slot the script was routed to.
-- A script passes its tenant block of 13 KEYS starting at `at` and calls tenantKeys(at) first:
--   list prefix (+0), ring:critical..ring:low (+1..+4), parked:critical..parked:low (+5..+8),
--   parked tenants (+9), running (+10), vtime (+11), tenants (+12)
-- ring:<p>: tenants with ready work at p, scored by their pass (stride scheduling); parked:<p>: the
-- same for tenants held at their running cap; running: tenant → leases held; vtime: priority →
-- pass of the last pick (where a tenant joining the ring starts); tenants: every tenant that may
-- have a ready list (for the sweep, which cannot list keys).
local PRIORITY_NAMES = { 'critical', 'high', 'default', 'low' }
local TK

local function tenantKeys(at)
  TK = {
    prefix = KEYS[at],
    ring = { KEYS[at + 1], KEYS[at + 2], KEYS[at + 3], KEYS[at + 4] },
    parked = { KEYS[at + 5], KEYS[at + 6], KEYS[at + 7], KEYS[at + 8] },
    parkedSet = KEYS[at + 9],
    running = KEYS[at + 10],
    vtime = KEYS[at + 11],
    tenants = KEYS[at + 12],
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

local vtimeCache = {}
-- Tenants added to the registry in this call, and whether any tenant is parked (read once: no
-- script parks a tenant and then pushes).
local registered, parkedAny = {}, nil
local function vtimeOf(p)
  if vtimeCache[p] == nil then vtimeCache[p] = tonumber(redis.call('HGET', TK.vtime, p) or '0') end
  return vtimeCache[p]
end

-- Makes ids ready for `tenant` at priority `p` (1-based), at the tail or (front) the head of its
-- list. A tenant new to the ring joins at the current virtual time, so it is served within one
-- round whatever the others hold; one parked at its running cap stays parked. Returns true when a
-- worker may lease them now (the tenant is not parked), so the caller rings the doorbell.
local function pushReady(p, tenant, ids, front)
  if #ids == 0 then return false end
  local key = listKey(p, tenant)
  for i = 1, #ids, 4000 do
    if front then
      redis.call('LPUSH', key, unpack(ids, i, math.min(i + 3999, #ids)))
    else
      redis.call('RPUSH', key, unpack(ids, i, math.min(i + 3999, #ids)))
    end
  end
  if not registered[tenant] then
    redis.call('SADD', TK.tenants, tenant)
    registered[tenant] = true
  end
  if parkedAny == nil then parkedAny = redis.call('EXISTS', TK.parkedSet) == 1 end
  if parkedAny and redis.call('SISMEMBER', TK.parkedSet, tenant) == 1 then
    redis.call('ZADD', TK.parked[p], 'NX', vtimeOf(p), tenant)
    return false
  end
  redis.call('ZADD', TK.ring[p], 'NX', vtimeOf(p), tenant)
  return true
end

-- Puts a parked tenant back into the rings it left (at its pass, or the virtual time if later:
-- being held at its cap earns it no credit). Returns true when it was parked.
local function unpark(tenant)
  if redis.call('SREM', TK.parkedSet, tenant) == 0 then return false end
  for p = 1, 4 do
    local pass = redis.call('ZSCORE', TK.parked[p], tenant)
    if pass then
      redis.call('ZREM', TK.parked[p], tenant)
      redis.call('ZADD', TK.ring[p], 'NX', math.max(tonumber(pass), vtimeOf(p)), tenant)
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
  if redis.call('SCARD', TK.parkedSet) > 0 then
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
