-- purge: forgets what Redis still holds of final tasks that retention deleted from Postgres. Only a
-- dead task is still held (its dead-letter entry, kept for a redrive, and its message, meta and
-- counters); succeeded and cancelled ones were forgotten when they ended. A task a lease holds, or
-- one that is in no dead-letter list, is left alone (neither happens to a task Postgres shows dead).
-- Each list is read once from its head, in chunks, only until every id sought in it was found
-- (retention deletes the oldest first, and lists are oldest first, so usually a short way), each
-- found entry replaced by a placeholder, and the placeholders removed with one LREM. So the cost is
-- the position of the farthest entry, not its sum over the ids: an LREM per id scanned again every
-- entry retention keeps at the head (a live idempotency key, a workflow not due, what a failed
-- purge left) for every task behind them.
-- KEYS: processing (1), msg (2), meta (3), attempts (4), tokens (5), ready_at (6), dlq:critical..dlq:low (7-10)
-- ARGV: ids
-- Returns: how many tasks were forgotten
local CHUNK = 1000
-- Not a task id (those are UUIDs), so no entry of a list is mistaken for one.
local PLACEHOLDER = '\0purged'
local sought = { {}, {}, {}, {} }
local counts = { 0, 0, 0, 0 }
for i = 1, #ARGV do
  local id = ARGV[i]
  local meta = redis.call('HGET', KEYS[3], id)
  if meta and not redis.call('ZSCORE', KEYS[1], id) then
    local p = tonumber(string.match(meta, '^(%d+):'))
    if p and p >= 0 and p <= 3 and not sought[p + 1][id] then
      sought[p + 1][id] = true
      counts[p + 1] = counts[p + 1] + 1
    end
  end
end
-- An ACL from before LSET was needed refuses it (before any write of the call): the rest is then
-- removed an LREM per id, as before, so an upgrade does not wait for the operator's new ACL.
local lsetRefused = false
local function forget(v)
  for k = 2, 6 do redis.call('HDEL', KEYS[k], v) end
end
local n = 0
for p = 1, 4 do
  local key, want = KEYS[6 + p], sought[p]
  local left, found, at = counts[p], 0, 0
  local len = left > 0 and redis.call('LLEN', key) or 0
  while left > 0 and at < len and not lsetRefused do
    for j, v in ipairs(redis.call('LRANGE', key, at, at + CHUNK - 1)) do
      if want[v] then
        local set = redis.pcall('LSET', key, at + j - 1, PLACEHOLDER)
        if type(set) == 'table' and set.err then
          lsetRefused = true
          break
        end
        want[v] = nil
        forget(v)
        found = found + 1
        left = left - 1
      end
    end
    at = at + CHUNK
  end
  if found > 0 then redis.call('LREM', key, found, PLACEHOLDER) end
  if lsetRefused then
    for v in pairs(want) do
      if redis.call('LREM', key, 1, v) > 0 then
        forget(v)
        found = found + 1
      end
    end
  end
  n = n + found
end
return n
