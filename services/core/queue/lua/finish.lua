-- finish: end leases with the outcomes Postgres has recorded, a whole batch of mixed outcomes in
-- one step: succeeded → the task is forgotten; retrying → its priority's retry set, due delayMs
-- from now (Redis clock); dead → its priority's dead-letter list (the message stays for redrive).
-- Only the current lease holder finishes a task (fenced by the token). An item with a `settle`
-- attempt count carries an outcome Postgres applied: if its lease is gone (Redis lost data and a
-- rebuilt copy waits again), that copy is moved where Postgres says, unless a lease holds it now.
-- Each lease ended counts off its tenant's running attempts (a tenant parked at its cap returns).
-- KEYS: as in placement: processing, msg, meta, attempts, tokens, ready_at, retry (7-10), dlq (11-14),
--       tenant block (15-30); doorbell (31), tombstones (32), rates prefix (33)
-- ARGV: groups of 6: id, token, outcome (s|r|d), priorityIndex, delayMs, settle (attempts Postgres counted; 0 = do not settle)
-- Returns: one integer per item: 1 = finished under its lease, 2 = lease gone but settled, 0 = nothing changed
-- @include bulk
-- @include doorbell
-- @include tenants
-- @include placement
-- @include tombstones
-- @include rates
useTombstones(KEYS[32])
local STATE = { s = 'succeeded', r = 'retrying', d = 'dead' }
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = argvIds(6)
local current = hmget(KEYS[5], ids)
local seen = {}
local ended, forgotten, endedHow = {}, {}, {}
local retry, dead = { {}, {}, {}, {} }, { {}, {}, {}, {} }
local out = {}
for j, id in ipairs(ids) do
  local i = (j - 1) * 6 + 1
  local outcome, p = ARGV[i + 2], tonumber(ARGV[i + 3])
  -- Cancelled by an operator: Postgres ended it `cancelled` (or succeeded); either way it is final.
  if outcome ~= 's' and tombstoned(id) then outcome = 's' end
  local due = now + tonumber(ARGV[i + 4])
  if seen[id] then
    -- A task twice in one call: the first item decided it.
    out[j] = 0
  elseif current[j] == ARGV[i + 1] then
    ended[#ended + 1] = id
    endedHow[#ended] = outcome
    if outcome == 's' then
      forgotten[#forgotten + 1] = id
    elseif outcome == 'r' then
      local z = retry[p + 1]
      z[#z + 1] = due
      z[#z + 1] = id
    else
      local l = dead[p + 1]
      l[#l + 1] = id
    end
    out[j] = 1
  elseif ARGV[i + 5] ~= '0' and settle(id, p, STATE[outcome], ARGV[i + 5], due, now) then
    out[j] = 2
  else
    out[j] = 0
  end
  seen[id] = true
end
-- Whose leases ended, read before a final outcome forgets the task.
local byTenant = {}
local RATE_KIND = { s = 'succeeded', r = 'retried', d = 'dead' }
for j, meta in ipairs(hmget(KEYS[3], ended)) do
  local tenant = 'default'
  if meta then
    local p, _, owner = parseMeta(meta)
    tenant = owner
    countRate(tenant, p, RATE_KIND[endedHow[j]])
  end
  byTenant[tenant] = (byTenant[tenant] or 0) + 1
end
bulk('ZREM', KEYS[1], ended)
bulk('HDEL', KEYS[5], ended)
for _, key in ipairs({ KEYS[2], KEYS[3], KEYS[4], KEYS[6] }) do bulk('HDEL', key, forgotten) end
for p = 1, 4 do
  bulk('ZADD', KEYS[6 + p], retry[p])
  bulk('RPUSH', KEYS[10 + p], dead[p])
end
if endLeases(byTenant) then ring(KEYS[31]) end
flushRates(KEYS[33], now)
return out
