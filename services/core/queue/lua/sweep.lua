-- sweep: every task Redis knows (it has `meta`) sits in exactly one place: a tenant's ready list,
-- the processing set, a retry set or a dead-letter list; every script moves tasks between them in
-- one step. A known task in none of them would never be leased again while the reconciler, which
-- only asks whether Redis knows a task, saw nothing wrong. This checks the invariant by counting
-- (a few commands per tenant with ready work, every reconciler pass); only when the counts
-- disagree does the caller look for the culprits, in pages of a bounded number of ids
-- (sweep-held.lua, sweep-unheld.lua; one script reading every held id held Redis for as long as
-- the backlog was long): known tasks held nowhere are forgotten, so the reconciler indexes them
-- again from Postgres; entries without `meta` (they can never run) are removed so the counts meet again.
-- Ids held twice are only counted: which copy is right is not Redis's to say. The caller passes
-- back how many it was told of, and an excess of exactly that many is not searched again (so a
-- duplicate costs one search, not one per pass).
-- It also keeps the fair-dispatch state true to the lists: a ready list that no ring (or parked
-- set) names is put back in its ring, entries of emptied lists are dropped (their passes remembered
-- as lease.lua does; remembered passes a ring's lowest has reached are forgotten), and when the running
-- counts do not add up to the leases held they are recounted from the leases (and parked tenants
-- reconsidered), so a count Redis lost or kept too long cannot hold a tenant back.
-- KEYS: msg (1), meta (2), attempts (3), tokens (4), ready_at (5), processing (6),
--       retry:critical..retry:low (7-10), dlq:critical..dlq:low (11-14), tenant block (15-30)
-- ARGV: '1' to leave the lists out of the reply (a count after a repair), ids held twice known already
-- Returns: { known, held, tenant repairs, 1 when the counts disagree (then the ready and dead-letter
--   lists holding entries follow: the pages' lists to read) }
-- @include bulk
-- @include tenants
tenantKeys(15)

-- The tenants that may hold ready lists: the registry, and whoever a ring or parked set names.
local tenantList, tenantSeen = {}, {}
local function addTenant(name)
  if not tenantSeen[name] then
    tenantSeen[name] = true
    tenantList[#tenantList + 1] = name
  end
end
for _, name in ipairs(redis.call('SMEMBERS', TK.tenants)) do addTenant(name) end
local inRing, inParked = {}, {}
for p = 1, 4 do
  inRing[p], inParked[p] = {}, {}
  local ring = redis.call('ZRANGE', TK.ring[p], 0, -1, 'WITHSCORES')
  for i = 1, #ring, 2 do
    inRing[p][ring[i]] = tonumber(ring[i + 1])
    addTenant(ring[i])
  end
  for _, name in ipairs(redis.call('ZRANGE', TK.parked[p], 0, -1)) do
    inParked[p][name] = true
    addTenant(name)
  end
end
local isParked = {}
for _, name in ipairs(redis.call('SMEMBERS', TK.parkedSet)) do isParked[name] = true end

local held, repairs = 0, 0
local lists = {}
local left = { {}, {}, {}, {} }
for _, name in ipairs(tenantList) do
  local any = false
  for p = 1, 4 do
    local key = listKey(p, name)
    local len = redis.call('LLEN', key)
    if len > 0 then
      any = true
      held = held + len
      lists[#lists + 1] = key
      if not inRing[p][name] and not inParked[p][name] then
        redis.call('ZADD', isParked[name] and TK.parked[p] or TK.ring[p], 'NX', rejoinPass(p, name), name)
        repairs = repairs + 1
      end
    else
      if inRing[p][name] then
        redis.call('ZREM', TK.ring[p], name)
        left[p][#left[p] + 1] = inRing[p][name]
        left[p][#left[p] + 1] = name
      end
      if inParked[p][name] then redis.call('ZREM', TK.parked[p], name) end
    end
  end
  if not any then redis.call('SREM', TK.tenants, name) end
end
for p = 1, 4 do rememberLeft(p, left[p]) end
for k = 11, 14 do lists[#lists + 1] = KEYS[k] end
local zsets = { KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10] }
for k = 11, 14 do held = held + redis.call('LLEN', KEYS[k]) end
for _, key in ipairs(zsets) do held = held + redis.call('ZCARD', key) end
local known = redis.call('HLEN', KEYS[2])
local twiceBefore = tonumber(ARGV[2])

-- Counts that disagree: the caller repairs in pages (sweep-held.lua, then sweep-unheld.lua), each
-- script reading a bounded number of ids, from the keys returned here (lists holding entries).
local repair = held ~= known + twiceBefore
-- Running attempts per tenant must add up to the leases held; if not, recount them from the leases.
local counted, sum = redis.call('HGETALL', TK.running), 0
for i = 2, #counted, 2 do sum = sum + tonumber(counted[i]) end
if sum ~= redis.call('ZCARD', KEYS[6]) then
  local byTenant = {}
  for _, meta in ipairs(hmget(KEYS[2], redis.call('ZRANGE', KEYS[6], 0, -1))) do
    if meta then
      local _, _, tenant = parseMeta(meta)
      byTenant[tenant] = (byTenant[tenant] or 0) + 1
    end
  end
  redis.call('DEL', TK.running)
  local pairsOut = {}
  for tenant, n in pairs(byTenant) do
    pairsOut[#pairsOut + 1] = tenant
    pairsOut[#pairsOut + 1] = n
  end
  bulk('HSET', TK.running, pairsOut)
  for name in pairs(isParked) do unpark(name) end
  repairs = repairs + 1
end

local out = { known, held, repairs, repair and 1 or 0 }
if repair and ARGV[1] ~= '1' then
  for _, key in ipairs(lists) do out[#out + 1] = key end
end
return out
