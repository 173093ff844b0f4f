-- lease: pop up to N ready tasks across priorities and tenants and lease each with a fresh token.
-- KEYS: processing (1), msg (2), meta (3), attempts (4), tokens (5), ready_at (6), wrr (7), doorbell (8),
--       tenant dispatch settings (9), tenant block (10-22)
-- ARGV: n, visibilityMs, tokenBase, strict (1|0), weightCritical, weightHigh, weightDefault, weightLow,
--       default max running per tenant (0 = unlimited)
-- Returns: { nowMs, tasks left ready, then per task: id, attempt, messageJson, meta, readyAtMs }; the
-- k-th task's token is tokenBase .. ':' .. k and every deadline is nowMs + visibilityMs (the caller
-- builds them rather than parse them once per task). "Left" counts only tasks this or another
-- worker may lease now (not those of tenants at their running cap).
-- Priorities first: smooth weighted round-robin over the priorities with leasable work, its state
-- kept in `wrr`, so a priority with weight w gets at least w/sum(weights) of the leases while it
-- has work (strict: always the highest). Within the chosen priority, stride scheduling across its
-- ring of tenants: the tenant with the lowest pass is served and its pass grows by 1e6/weight, so
-- tenants share leases in proportion to their weights and one joining the ring (at the virtual
-- time, the pass of the last pick) is served before any backlogged tenant is served again.
-- A tenant at its running cap is moved to the priority's parked set; the end of one of its leases
-- brings it back (includes/tenants.lua). The picks are computed first, on as much of each ring as
-- they need; then each tenant's share is popped with one LPOP, so a single tenant costs about what
-- a single list did.
-- @include bulk
-- @include doorbell
-- @include tenants
-- @include heap
tenantKeys(10)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local base = ARGV[3]
local strict = ARGV[4] == '1'
local defaultCap = tonumber(ARGV[9])
local wrr = redis.call('HMGET', KEYS[7], 1, 2, 3, 4)
local w, cur = {}, {}
for p = 1, 4 do
  w[p] = tonumber(ARGV[4 + p])
  cur[p] = tonumber(wrr[p] or '0')
end

-- A tenant's pass grows by STRIDE / weight per lease.
local STRIDE = 1000000
-- Tenants seen in this call: room under their cap (math.huge = uncapped) and stride.
local tenants = {}
local function loadTenants(names)
  local missing, listed = {}, {}
  for _, name in ipairs(names) do
    if not tenants[name] and not listed[name] then
      listed[name] = true
      missing[#missing + 1] = name
    end
  end
  if #missing == 0 then return end
  local running, conf = hmget(TK.running, missing), hmget(KEYS[9], missing)
  for i, name in ipairs(missing) do
    local weight, cap = 1, defaultCap
    if conf[i] then
      local sep = string.find(conf[i], ':', 1, true)
      weight = tonumber(string.sub(conf[i], 1, sep - 1)) or 1
      local c = tonumber(string.sub(conf[i], sep + 1))
      if c and c >= 0 then cap = c end
    end
    local room = math.huge
    if cap > 0 then room = cap - tonumber(running[i] or '0') end
    -- Whole numbers, so passes add up exactly (a weight-1 tenant reaches 2^53 after 9e9 leases).
    tenants[name] = { room = room, stride = math.floor(STRIDE / math.max(1, weight)) }
  end
end

-- Per priority: a heap of the tenants fetched from its ring so far (entries: tenant, pass, avail =
-- tasks in its list not yet picked, take = picked), how far the ring was read, the pass of the
-- last tenant read (unread ones have at least that pass), and what changes in the ring at the end.
local Q = {}
for p = 1, 4 do Q[p] = { heap = {}, read = 0, bound = 0, exhausted = false, window = math.max(1, math.min(n, 16)), served = {}, gone = {}, park = {} } end
local seq = 0

local function fetch(p)
  local q = Q[p]
  local got = redis.call('ZRANGE', TK.ring[p], q.read, q.read + q.window - 1, 'WITHSCORES')
  local count = #got / 2
  if count < q.window then q.exhausted = true end
  q.read = q.read + count
  q.window = math.min(q.window * 2, 512)
  local names = {}
  for i = 1, #got, 2 do names[#names + 1] = got[i] end
  loadTenants(names)
  for i, name in ipairs(names) do
    local pass = tonumber(got[2 * i])
    q.bound = pass
    local len = redis.call('LLEN', listKey(p, name))
    if len == 0 then
      -- Its list was emptied by another path (settle, sweep): it leaves the ring.
      q.gone[#q.gone + 1] = name
    elseif tenants[name].room <= 0 then
      q.park[name] = pass
    else
      seq = seq + 1
      heapPush(q.heap, { tenant = name, pass = pass, avail = len, take = 0, seq = seq })
    end
  end
end

-- The entry priority p would serve next, or nil when it has nothing leasable.
local function top(p)
  local q = Q[p]
  while true do
    local e = q.heap[1]
    if not q.exhausted and (e == nil or e.pass > q.bound) then
      fetch(p)
    elseif e == nil then
      return nil
    elseif tenants[e.tenant].room <= 0 then
      -- Reached its cap through picks at another priority in this call.
      heapPop(q.heap)
      q.park[e.tenant] = e.pass
    else
      return e
    end
  end
end

local vt = {}
-- Serves the top tenant of priority p `k` times in a row.
local function pick(p, k)
  local q = Q[p]
  local e = heapPop(q.heap)
  local tt = tenants[e.tenant]
  if e.take == 0 then q.served[#q.served + 1] = e end
  e.take = e.take + k
  e.avail = e.avail - k
  tt.room = tt.room - k
  vt[p] = e.pass + (k - 1) * tt.stride
  e.pass = e.pass + k * tt.stride
  if e.avail > 0 then
    if tt.room > 0 then
      seq = seq + 1
      e.seq = seq
      heapPush(q.heap, e)
    else
      q.park[e.tenant] = e.pass
    end
  end
  return e
end

-- Runs of picks in order: { entry, count }.
local picks, picked = {}, 0
while picked < n do
  local chosen, total, others = nil, 0, 0
  if strict then
    for p = 1, 4 do
      if top(p) then chosen = p break end
    end
  else
    for p = 1, 4 do
      if top(p) then
        cur[p] = cur[p] + w[p]
        total = total + w[p]
        if chosen == nil or cur[p] > cur[chosen] then chosen = p end
      end
    end
    if chosen ~= nil then
      cur[chosen] = cur[chosen] - total
      if total > w[chosen] then others = 1 end
    end
  end
  if chosen == nil then break end
  -- The common case, one tenant with work in the only priority that has any (strict: the highest
  -- one), takes its share at once: the next picks would all be its (and leave `cur` as it is).
  local k = 1
  local q = Q[chosen]
  if others == 0 and q.exhausted and #q.heap == 1 then
    local e = q.heap[1]
    k = math.min(n - picked, e.avail, tenants[e.tenant].room)
  end
  picks[#picks + 1] = { pick(chosen, k), k }
  picked = picked + k
end

-- Leasable work left behind (tenants not read yet count one task each: at least that).
local left = 0
for p = 1, 4 do
  local q = Q[p]
  for _, e in ipairs(q.heap) do
    if tenants[e.tenant].room > 0 then left = left + e.avail end
  end
  if not q.exhausted then left = left + math.max(0, redis.call('ZCARD', TK.ring[p]) - q.read) end
end
-- Work left behind wakes another idle worker; a ring no task is left for would only cost the
-- next waiter an empty lease, so it is taken back.
if left > 0 then ring(KEYS[8]) else redis.call('DEL', KEYS[8]) end

-- The rings as the picks leave them: served tenants at their new pass (or out, when their list is
-- empty or they are parked), emptied and capped ones out.
local anyParked = {}
local vtimes = {}
for p = 1, 4 do
  local q = Q[p]
  local add, rem, parked = {}, {}, {}
  for _, e in ipairs(q.served) do
    if e.avail == 0 then
      rem[#rem + 1] = e.tenant
    elseif not q.park[e.tenant] then
      add[#add + 1] = e.pass
      add[#add + 1] = e.tenant
    end
  end
  for _, name in ipairs(q.gone) do rem[#rem + 1] = name end
  for name, pass in pairs(q.park) do
    rem[#rem + 1] = name
    parked[#parked + 1] = pass
    parked[#parked + 1] = name
    anyParked[#anyParked + 1] = name
  end
  bulk('ZADD', TK.ring[p], add)
  bulk('ZREM', TK.ring[p], rem)
  bulk('ZADD', TK.parked[p], parked)
  if vt[p] then
    vtimes[#vtimes + 1] = p
    vtimes[#vtimes + 1] = vt[p]
  end
end
bulk('SADD', TK.parkedSet, anyParked)
bulk('HSET', TK.vtime, vtimes)
if not strict then redis.call('HSET', KEYS[7], 1, cur[1], 2, cur[2], 3, cur[3], 4, cur[4]) end
if picked == 0 then return { now, left } end

-- Pop each tenant's share at once, then hand ids out in pick order (the rotation's interleaving).
for p = 1, 4 do
  for _, e in ipairs(Q[p].served) do
    e.ids = redis.call('LPOP', listKey(p, e.tenant), e.take)
    e.nextId = 1
  end
end
-- An id is leased once per call even if it was queued twice (no script queues a task twice, but
-- two tokens for one task in one reply would run it twice).
local ids, owners, seen = {}, {}, {}
for _, run in ipairs(picks) do
  local e = run[1]
  for _ = 1, run[2] do
    local id = e.ids and e.ids[e.nextId]
    e.nextId = e.nextId + 1
    if id and not seen[id] then
      seen[id] = true
      ids[#ids + 1] = id
      owners[#owners + 1] = e.tenant
    end
  end
end
local msgs, metas, attempts, readyAt = hmget(KEYS[2], ids), hmget(KEYS[3], ids), hmget(KEYS[4], ids), hmget(KEYS[6], ids)
local out = { now, left }
local counted, tokens, leasedAt = {}, {}, {}
local running = {}
local leased = 0
for i, id in ipairs(ids) do
  -- An id without its message is a leftover of a partial flush; the reconciler re-indexes it
  -- from Postgres, so it is dropped here rather than leased without a payload.
  if msgs[i] and metas[i] then
    leased = leased + 1
    local token = base .. ':' .. leased
    local attempt = tonumber(attempts[i] or '0') + 1
    counted[#counted + 1] = id
    counted[#counted + 1] = attempt
    tokens[#tokens + 1] = id
    tokens[#tokens + 1] = token
    leasedAt[#leasedAt + 1] = deadline
    leasedAt[#leasedAt + 1] = id
    running[owners[i]] = (running[owners[i]] or 0) + 1
    out[#out + 1] = id
    out[#out + 1] = attempt
    out[#out + 1] = msgs[i]
    out[#out + 1] = metas[i]
    out[#out + 1] = readyAt[i] or now
  end
end
bulk('HSET', KEYS[4], counted)
bulk('HSET', KEYS[5], tokens)
bulk('ZADD', KEYS[1], leasedAt)
for tenant, count in pairs(running) do redis.call('HINCRBY', TK.running, tenant, count) end
return out
