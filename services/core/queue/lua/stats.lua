-- stats: a consistent snapshot of the queue for metrics, read in one step. Ready tasks are counted
-- over every tenant with ready work (in a ring or parked), so this costs a few commands per such
-- tenant and priority; the oldest waiting task of a priority is the oldest among the tenants in
-- its ring (includes/oldest.lua: not always a list's head). A parked tenant's tasks wait for its own running cap, which no worker can lift: its
-- head would page OldestWaitingTaskTooOld and ask the autoscaler for workers that stay idle.
-- KEYS: retry:critical..retry:low (1-4), dlq:critical..dlq:low (5-8), processing (9), ready_at (10),
--       workers (11), tenant block (12-27)
-- ARGV: tenantLimit: tenants reported one by one (those with most tasks ready and running); the rest summed
-- Returns: { nowMs, ready×4, retrying×4, dead×4, processing, oldestReadyAtMs×4 (0 = empty), liveWorkers,
--            leasable×4 (ready leaving out parked tenants), tenants reported, then groups of 3:
--            tenant, ready, running; the last group, when tenants were left out, is '' with their sums }
-- @include bulk
-- @include tenants
-- @include oldest
tenantKeys(12)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ready, oldest, leasable = {}, {}, {}
local readyOf = {}
for p = 1, 4 do
  -- listed[name]: true for a tenant in the ring, false for one only parked.
  local names, listed = {}, {}
  for i, key in ipairs({ TK.ring[p], TK.parked[p] }) do
    for _, name in ipairs(redis.call('ZRANGE', key, 0, -1)) do
      if listed[name] == nil then
        listed[name] = i == 1
        names[#names + 1] = name
      end
    end
  end
  local total, first, open = 0, 0, 0
  for _, name in ipairs(names) do
    local key = listKey(p, name)
    local len = redis.call('LLEN', key)
    if len > 0 then
      total = total + len
      readyOf[name] = (readyOf[name] or 0) + len
      if listed[name] then
        open = open + len
        local ms = oldestReady(key, KEYS[10])
        if ms > 0 and (first == 0 or ms < first) then first = ms end
      end
    end
  end
  ready[p] = total
  leasable[p] = open
  oldest[p] = first
end
local out = { now }
for p = 1, 4 do out[#out + 1] = ready[p] end
for i = 1, 4 do out[#out + 1] = redis.call('ZCARD', KEYS[i]) end
for i = 5, 8 do out[#out + 1] = redis.call('LLEN', KEYS[i]) end
out[#out + 1] = redis.call('ZCARD', KEYS[9])
for p = 1, 4 do out[#out + 1] = oldest[p] end
-- Workers announce themselves with a score = the time their announcement lapses.
redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', now)
out[#out + 1] = redis.call('ZCARD', KEYS[11])
for p = 1, 4 do out[#out + 1] = leasable[p] end

-- Per tenant: ready (all priorities) and running; the `limit` busiest one by one, the rest summed.
local running = redis.call('HGETALL', TK.running)
local rows, runningOf = {}, {}
for i = 1, #running, 2 do runningOf[running[i]] = tonumber(running[i + 1]) end
for name, n in pairs(readyOf) do rows[#rows + 1] = { name, n, runningOf[name] or 0 } end
for name, n in pairs(runningOf) do
  if not readyOf[name] then rows[#rows + 1] = { name, 0, n } end
end
table.sort(rows, function(a, b)
  if a[2] + a[3] ~= b[2] + b[3] then return a[2] + a[3] > b[2] + b[3] end
  return a[1] < b[1]
end)
local limit = tonumber(ARGV[1])
out[#out + 1] = math.min(limit, #rows)
local restReady, restRunning = 0, 0
for i, row in ipairs(rows) do
  if i <= limit then
    out[#out + 1] = row[1]
    out[#out + 1] = row[2]
    out[#out + 1] = row[3]
  else
    restReady = restReady + row[2]
    restRunning = restRunning + row[3]
  end
end
if #rows > limit then
  out[#out + 1] = ''
  out[#out + 1] = restReady
  out[#out + 1] = restRunning
end
return out
