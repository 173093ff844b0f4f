-- purge: forgets what Redis still holds of final tasks that retention deleted from Postgres. Only a
-- dead task is still held (its dead-letter entry, kept for a redrive, and its message, meta and
-- counters); succeeded and cancelled ones were forgotten when they ended. Dead-letter lists are
-- oldest first and retention deletes the oldest first, so LREM with count 1 (a scan from the head
-- that stops at the match) finds each near the head. A task a lease holds, or one that is in no
-- dead-letter list, is left alone (neither happens to a task Postgres shows dead).
-- KEYS: processing (1), msg (2), meta (3), attempts (4), tokens (5), ready_at (6), dlq:critical..dlq:low (7-10)
-- ARGV: ids
-- Returns: how many tasks were forgotten
local n = 0
for i = 1, #ARGV do
  local id = ARGV[i]
  local meta = redis.call('HGET', KEYS[3], id)
  if meta and not redis.call('ZSCORE', KEYS[1], id) then
    local p = tonumber(string.match(meta, '^(%d+):'))
    if p and p >= 0 and p <= 3 and redis.call('LREM', KEYS[7 + p], 1, id) == 1 then
      for k = 2, 6 do redis.call('HDEL', KEYS[k], id) end
      n = n + 1
    end
  end
end
return n
