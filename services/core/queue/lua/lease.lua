-- lease: pop up to N ready tasks across priorities and tenants and lease each with a fresh token.
-- KEYS: processing (1), msg (2), meta (3), attempts (4), tokens (5), ready_at (6), wrr (7), doorbell (8:
--       in one partition of several, a placeholder the adapter ignores),
--       tenant dispatch settings (9), tenant block (10-25), lease-call prefix (26)
-- ARGV: n, visibilityMs, tokenBase, strict (1|0), weightCritical, weightHigh, weightDefault, weightLow,
--       default max running per tenant (0 = unlimited), count active (1|0), the token base of a call
--       whose answer arrived ('' if none)
-- Returns: { nowMs, tasks left ready, active, then per task: id, attempt, messageJson, meta, readyAtMs }; the
-- k-th task's token is tokenBase .. ':' .. k and every deadline is nowMs + visibilityMs (the caller
-- builds them rather than parse them once per task). "Left" counts only tasks this or another
-- worker may lease now (not those of tenants at their running cap). "Active": when asked, the
-- tenants in each priority's ring afterwards ({critical, high, default, low}: a partitioned queue
-- shares a lease round out by them), else 0.
-- Priorities first: smooth weighted round-robin over the priorities with leasable work, its state
-- kept in `wrr`, so a priority with weight w gets at least w/sum(weights) of the leases while it
-- has work (strict: always the highest). Within a priority, stride scheduling across its ring of
-- tenants: the tenant with the lowest pass is served a turn (up to QUANTUM tasks) and its pass
-- grows by 1e6/weight per task, so tenants share leases in proportion to their weights, and one
-- joining the ring (just below its lowest pass, includes/tenants.lua) is served before any tenant
-- in it gets another turn; one that emptied its list and joins again soon gets back the pass it
-- left with. A tenant at its running cap is moved to the
-- priority's parked set; the end of one of its leases brings it back (includes/tenants.lua).
-- The picks are computed first, on as much of each ring as they need; then each tenant's share is
-- popped with one LPOP, so a single tenant costs about what a single list did. docs/fair-dispatch.md
-- explains the choices.
-- @include bulk
-- @include doorbell
-- @include tenants
-- @include heap
tenantKeys(10)
local base = ARGV[3]
-- A call is recorded (its time and ids) until its caller has its answer (it names the call in its
-- next one) or the leases run out: the same call made again (a client resending it after a lost
-- answer, or the caller retrying it) answers with those leases instead of leasing other tasks
-- under the same tokens, so a lost answer strands no task. A lease ended since is left out (an
-- empty id keeps the others' places: the k-th is still token k).
if ARGV[11] ~= '' then redis.call('DEL', KEYS[26] .. ARGV[11]) end
local call = KEYS[26] .. base
local made = redis.call('GET', call)
if made then
  local at = string.find(made, ';', 1, true)
  local out = { tonumber(string.sub(made, 1, at - 1)), 0, 0 }
  local k = 0
  for id in string.gmatch(string.sub(made, at + 1), '[^,]+') do
    k = k + 1
    local held = redis.call('HGET', KEYS[5], id) == base .. ':' .. k and redis.call('ZSCORE', KEYS[1], id)
    local msg = held and redis.call('HGET', KEYS[2], id)
    local meta = msg and redis.call('HGET', KEYS[3], id)
    if meta then
      out[#out + 1] = id
      out[#out + 1] = tonumber(redis.call('HGET', KEYS[4], id) or '1')
      out[#out + 1] = msg
      out[#out + 1] = meta
      out[#out + 1] = redis.call('HGET', KEYS[6], id) or out[1]
    else
      out[#out + 1] = ''
      out[#out + 1] = 0
      out[#out + 1] = ''
      out[#out + 1] = ''
      out[#out + 1] = 0
    end
  end
  return out
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local strict = ARGV[4] == '1'
local defaultCap = tonumber(ARGV[9])
-- `custom`: how many tenants have settings of their own (dispatch.lua counts them).
local wrr = redis.call('HMGET', KEYS[7], 1, 2, 3, 4, 'custom')
local w, cur = {}, {}
for p = 1, 4 do
  w[p] = tonumber(ARGV[4 + p])
  cur[p] = tonumber(wrr[p] or '0')
end

-- A tenant's pass grows by STRIDE / weight per lease.
local STRIDE = 1000000
-- With no tenant settings and no default cap (the common case) every tenant has weight 1 and no
-- cap: neither settings nor running counts need reading.
local plain = tonumber(wrr[5] or '0') == 0 and defaultCap == 0
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
  if plain then
    for _, name in ipairs(missing) do tenants[name] = { room = math.huge, stride = STRIDE } end
    return
  end
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
    tenants[name] = { room = room, stride = math.floor(STRIDE / math.max(1, weight)), running = tonumber(running[i] or '0') }
  end
end

-- Per priority: the tenants read from its ring, in the ring's order (`queue`, from `qi` on), and
-- those served once and waiting for another turn (`heap`) — the ring is sorted already, so only
-- re-served tenants cost heap operations. An entry: tenant, its state `tt`, pass, avail (tasks in
-- its list not yet picked), take (picked), seq (order among equal passes). Also how far the ring
-- was read, the pass of the last tenant read (unread ones have at least that pass), and what
-- changes in the ring at the end.
local Q = {}
for p = 1, 4 do Q[p] = { queue = {}, qi = 1, heap = {}, read = 0, bound = 0, exhausted = false, window = math.max(1, math.min(n, 16)), served = {}, gone = {}, park = {} } end
local picked = 0
local seq = 0

local function fetch(p)
  local q = Q[p]
  local got = redis.call('ZRANGE', TK.ring[p], q.read, q.read + q.window - 1, 'WITHSCORES')
  local count = #got / 2
  if count < q.window then q.exhausted = true end
  q.read = q.read + count
  -- The next read, if one is needed, takes as many tenants as picks are still to make (each
  -- tenant read that has room gives at least one).
  q.window = math.min(math.max(16, n - picked), 512)
  local names = {}
  for i = 1, #got, 2 do names[#names + 1] = got[i] end
  loadTenants(names)
  local queue = q.queue
  for i, name in ipairs(names) do
    local pass = tonumber(got[2 * i])
    q.bound = pass
    local len = redis.call('LLEN', listKey(p, name))
    local tt = tenants[name]
    if len == 0 then
      -- Its list was emptied by another path (settle, sweep): it leaves the ring.
      q.gone[#q.gone + 1] = pass
      q.gone[#q.gone + 1] = name
    elseif tt.room <= 0 then
      q.park[name] = pass
    else
      seq = seq + 1
      queue[#queue + 1] = { tenant = name, tt = tt, pass = pass, avail = len, take = 0, seq = seq }
    end
  end
end

-- The entry priority p would serve next (and whether it heads the queue), or nil when it has
-- nothing leasable.
local function top(p)
  local q = Q[p]
  while true do
    local a, b = q.queue[q.qi], q.heap[1]
    local e, fromQueue = b, false
    if a and (b == nil or not heapLess(b, a)) then e, fromQueue = a, true end
    -- Queued entries never pass the bound: past it, unread tenants may come first.
    if not q.exhausted and (e == nil or e.pass > q.bound) then
      fetch(p)
    elseif e == nil then
      return nil
    elseif e.tt.room <= 0 then
      -- Reached its cap through picks at another priority in this call.
      if fromQueue then q.qi = q.qi + 1 else heapPop(q.heap) end
      q.park[e.tenant] = e.pass
    else
      return e, fromQueue
    end
  end
end

-- Tasks priority p could give now, counted up to `need` (reading more of its ring meanwhile).
local function supply(p, need)
  local q = Q[p]
  local sum, from = 0, q.qi
  for _, e in ipairs(q.heap) do
    if e.tt.room > 0 then sum = sum + math.min(e.avail, e.tt.room) end
  end
  while true do
    for i = from, #q.queue do
      local e = q.queue[i]
      if e.tt.room > 0 then sum = sum + math.min(e.avail, e.tt.room) end
    end
    if sum >= need or q.exhausted then return math.min(sum, need) end
    from = #q.queue + 1
    fetch(p)
  end
end

-- A tenant's turn is up to QUANTUM tasks, so a call serves at least 16 tenants when that many have
-- work and each tenant's commands (LLEN, LPOP, its place in the ring) are shared by several tasks;
-- its pass grows by its stride per task all the same, so shares follow the weights.
local QUANTUM = math.max(1, math.ceil(n / 16))
-- Per priority, its picks in the order stride scheduling made them: { entry, count } runs.
local streams = { {}, {}, {}, {} }
-- Makes up to `count` picks at priority p, lowest pass first; returns how many it made.
local function serve(p, count)
  local q = Q[p]
  local made = 0
  while made < count do
    local e, fromQueue = top(p)
    if not e then break end
    local k = math.min(QUANTUM, count - made, e.avail, e.tt.room)
    -- The last tenant with work here takes the rest at once: the next picks would all be its.
    if q.exhausted and #q.heap + #q.queue - q.qi + 1 == 1 then k = math.min(count - made, e.avail, e.tt.room) end
    if fromQueue then q.qi = q.qi + 1 else heapPop(q.heap) end
    local tt = e.tt
    if e.take == 0 then q.served[#q.served + 1] = e end
    e.take = e.take + k
    e.avail = e.avail - k
    tt.room = tt.room - k
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
    local stream = streams[p]
    stream[#stream + 1] = { e, k }
    made = made + k
  end
  return made
end

-- The priorities' rotation decides how many picks each priority gets (counting what each can give),
-- then each priority's picks are made across its tenants. A tenant with work at two priorities
-- may reach its cap through one and leave the other short: the rest is shared out again.
local sequence = {}
while picked < n do
  local need = n - picked
  local len, take, steps = {}, { 0, 0, 0, 0 }, {}
  for p = 1, 4 do len[p] = supply(p, need) end
  while #steps < need do
    local pick, total = nil, 0
    if strict then
      for p = 1, 4 do
        if len[p] > take[p] then pick = p break end
      end
    else
      for p = 1, 4 do
        if len[p] > take[p] then
          cur[p] = cur[p] + w[p]
          total = total + w[p]
          if pick == nil or cur[p] > cur[pick] then pick = p end
        end
      end
      if pick ~= nil then cur[pick] = cur[pick] - total end
    end
    if pick == nil then break end
    take[pick] = take[pick] + 1
    steps[#steps + 1] = pick
  end
  if #steps == 0 then break end
  local made, used = {}, { 0, 0, 0, 0 }
  local round = 0
  for p = 1, 4 do
    made[p] = take[p] > 0 and serve(p, take[p]) or 0
    round = round + made[p]
  end
  -- The rotation's interleaving, for the picks that were made.
  for _, p in ipairs(steps) do
    if used[p] < made[p] then
      used[p] = used[p] + 1
      sequence[#sequence + 1] = p
    end
  end
  picked = picked + round
  if round == 0 then break end
end

-- Leasable work left behind (tenants not read yet count one task each: at least that).
local left = 0
for p = 1, 4 do
  local q = Q[p]
  for _, e in ipairs(q.heap) do
    if e.tt.room > 0 then left = left + e.avail end
  end
  for i = q.qi, #q.queue do
    local e = q.queue[i]
    if e.tt.room > 0 then left = left + e.avail end
  end
  if not q.exhausted then left = left + math.max(0, redis.call('ZCARD', TK.ring[p]) - q.read) end
end
-- Work left behind wakes another idle worker; a ring no task is left for would only cost the
-- next waiter an empty lease, so it is taken back.
if left > 0 then ring(KEYS[8]) else redis.call('DEL', KEYS[8]) end
local function active()
  if ARGV[10] ~= '1' then return 0 end
  local n = {}
  for p = 1, 4 do n[p] = redis.call('ZCARD', TK.ring[p]) end
  return n
end

-- The rings as the picks leave them: served tenants at their new pass (or out, when their list is
-- empty or they are parked), emptied and capped ones out, remembering the passes emptied ones left
-- with. A tenant alone in its ring keeps its pass (passes only order tenants, and a tenant joining
-- starts below the lowest anyway) unless a tenant that left is remembered: its pass must then grow,
-- so that one comes back no later than it would have been served had it stayed.
local parkedNames = {}
for p = 1, 4 do
  local q = Q[p]
  local add, rem, parked = {}, {}, {}
  -- Tenants leaving the ring with their pass: those whose list another path emptied, then those
  -- served to the end of their list.
  local gone = q.gone
  for i = 2, #gone, 2 do rem[#rem + 1] = gone[i] end
  local alone = q.exhausted and q.read == 1
  local catchUp = alone and #q.served == 1 and q.served[1].avail > 0 and not q.park[q.served[1].tenant]
    and redis.call('EXISTS', TK.left[p]) == 1
  if catchUp then alone = false end
  for _, e in ipairs(q.served) do
    if e.avail == 0 then
      rem[#rem + 1] = e.tenant
      gone[#gone + 1] = e.pass
      gone[#gone + 1] = e.tenant
    elseif not q.park[e.tenant] and not alone then
      add[#add + 1] = e.pass
      add[#add + 1] = e.tenant
    end
  end
  for name, pass in pairs(q.park) do
    rem[#rem + 1] = name
    parked[#parked + 1] = pass
    parked[#parked + 1] = name
    parkedNames[#parkedNames + 1] = name
  end
  bulk('ZADD', TK.ring[p], add)
  bulk('ZREM', TK.ring[p], rem)
  bulk('ZADD', TK.parked[p], parked)
  if #gone > 0 or catchUp then rememberLeft(p, gone) end
end
bulk('SADD', TK.parkedSet, parkedNames)
if not strict then redis.call('HSET', KEYS[7], 1, cur[1], 2, cur[2], 3, cur[3], 4, cur[4]) end
if picked == 0 then return { now, left, active() } end

-- Pop each tenant's share at once, then hand ids out in the rotation's order across priorities
-- and stride order within each.
for p = 1, 4 do
  for _, e in ipairs(Q[p].served) do
    e.ids = redis.call('LPOP', listKey(p, e.tenant), e.take)
    e.nextId = 1
  end
end
-- An id is leased once per call even if it was queued twice (no script queues a task twice, but
-- two tokens for one task in one reply would run it twice).
local ids, owners, seen = {}, {}, {}
local runAt, leftInRun = { 1, 1, 1, 1 }, { 0, 0, 0, 0 }
for _, p in ipairs(sequence) do
  local stream = streams[p]
  if leftInRun[p] == 0 then
    leftInRun[p] = stream[runAt[p]][2]
    runAt[p] = runAt[p] + 1
  end
  leftInRun[p] = leftInRun[p] - 1
  local e = stream[runAt[p] - 1][1]
  local id = e.ids and e.ids[e.nextId]
  e.nextId = e.nextId + 1
  if id and not seen[id] then
    seen[id] = true
    ids[#ids + 1] = id
    owners[#owners + 1] = e.tenant
  end
end
local msgs, metas, attempts, readyAt = hmget(KEYS[2], ids), hmget(KEYS[3], ids), hmget(KEYS[4], ids), hmget(KEYS[6], ids)
local out = { now, left, active() }
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
if leased > 0 then
  local leasedIds = {}
  for i = 1, #counted, 2 do leasedIds[#leasedIds + 1] = counted[i] end
  redis.call('SET', call, now .. ';' .. table.concat(leasedIds, ','), 'PX', ARGV[2])
end
-- Running counts: the counts read plus these leases, in one command; when none were read (plain),
-- one increment per tenant served (a few per call, turns being several tasks).
local counts = {}
for tenant, count in pairs(running) do
  if plain then
    redis.call('HINCRBY', TK.running, tenant, count)
  else
    counts[#counts + 1] = tenant
    counts[#counts + 1] = tenants[tenant].running + count
  end
end
bulk('HSET', TK.running, counts)
return out
