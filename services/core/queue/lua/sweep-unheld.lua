-- sweep-unheld: one page of the sweep's repair (see sweep.lua), last part. Walks about `count`
-- known tasks (HSCAN of meta from `cursor`; a hash small enough for a listpack, at most
-- hash-max-listpack-entries, comes whole) and forgets those held nowhere, so the
-- reconciler indexes them again from Postgres. The pass's held-id set (sweep-held.lua) was read
-- over several calls while tasks moved, so an id it lacks is checked here against each place that
-- could hold it (processing, the retry sets, its tenant's ready lists, the dead-letter lists): only
-- a task held nowhere now is forgotten, never one that moved between pages (forgetting a leased
-- or ready task would run it twice once the reconciler queued it again).
-- KEYS: the pass's held-id set (1), msg (2), meta (3), attempts (4), tokens (5), ready_at (6),
--       processing (7), retry:critical..retry:low (8-11), dlq:critical..dlq:low (12-15), tenant block (16-31)
-- ARGV: HSCAN cursor, count, the most tasks to forget in this pass (what is left of it)
-- Returns: { next cursor ('0': done), forgotten ids... }; the pass's last call drops the held-id set
-- @include bulk
-- @include tenants
tenantKeys(16)
local LIST_CHUNK = 1000
-- A task that moved into a list between pages sits near one of its ends (pushed at the head or
-- the tail): looked for there first, the whole list read only for one found near neither.
local NEAR = 100

-- An ACL user made before +lpos (docs/security.md) refuses LPOS: the list is then read in chunks.
local lposRefused = false
local function inList(key, id)
  if not lposRefused then
    local near = redis.pcall('LPOS', key, id, 'MAXLEN', NEAR)
    if type(near) ~= 'table' then
      return near ~= false or redis.call('LPOS', key, id, 'RANK', -1, 'MAXLEN', NEAR) ~= false or redis.call('LPOS', key, id) ~= false
    end
    lposRefused = true
  end
  local n = redis.call('LLEN', key)
  for i = 0, n - 1, LIST_CHUNK do
    for _, v in ipairs(redis.call('LRANGE', key, i, i + LIST_CHUNK - 1)) do
      if v == id then return true end
    end
  end
  return false
end

-- Where it could be, the places its meta names first (its priority's ready list and dead letters).
local function heldSomewhere(id, meta)
  for k = 7, 11 do
    if redis.call('ZSCORE', KEYS[k], id) then return true end
  end
  local p, _, tenant = parseMeta(meta)
  local order = { p + 1 }
  for q = 1, 4 do if q ~= p + 1 then order[#order + 1] = q end end
  for _, q in ipairs(order) do
    if inList(listKey(q, tenant), id) or inList(KEYS[11 + q], id) then return true end
  end
  return false
end

local page = redis.call('HSCAN', KEYS[3], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local fields, limit = page[2], tonumber(ARGV[3])
local out, gone = { page[1] }, {}
for i = 1, #fields, 2 do
  if #out - 1 >= limit then break end
  local id = fields[i]
  -- (HSCAN may return a field twice.)
  if not gone[id] and redis.call('SISMEMBER', KEYS[1], id) == 0 and not heldSomewhere(id, fields[i + 1]) then
    for k = 2, 6 do redis.call('HDEL', KEYS[k], id) end
    gone[id] = true
    out[#out + 1] = id
  end
end
if out[1] == '0' or #out - 1 >= limit then redis.call('DEL', KEYS[1]) end
return out
