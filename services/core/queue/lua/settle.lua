-- settle: put tasks that no lease holds where Postgres says they are, when the normal fenced path
-- could not (a reclaimed lease whose attempt Postgres had already counted; an outcome Postgres
-- took while Redis had lost the lease and a rebuilt copy of the task waits again).
-- A task currently leased is left alone: its holder settles it. One Redis does not know is left
-- to the reconciler.
-- KEYS: processing, msg, meta, attempts, tokens, ready_at, q:critical..q:low (7-10),
--       retry:critical..retry:low (11-14), dlq:critical..dlq:low (15-18)
-- ARGV: groups of 5: id, priorityIndex, state (queued|retrying|succeeded|dead), attempts, dueAtMs
-- Returns: how many tasks were settled
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local settled = 0
for i = 1, #ARGV, 5 do
  local id = ARGV[i]
  local p = tonumber(ARGV[i + 1])
  local state = ARGV[i + 2]
  if not redis.call('ZSCORE', KEYS[1], id) and redis.call('HEXISTS', KEYS[2], id) == 1 then
    redis.call('LREM', KEYS[7 + p], 0, id)
    redis.call('ZREM', KEYS[11 + p], id)
    redis.call('LREM', KEYS[15 + p], 0, id)
    if state == 'succeeded' then
      redis.call('HDEL', KEYS[2], id)
      redis.call('HDEL', KEYS[3], id)
      redis.call('HDEL', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
      redis.call('HDEL', KEYS[6], id)
    else
      redis.call('HSET', KEYS[4], id, ARGV[i + 3])
      if state == 'queued' then
        redis.call('LPUSH', KEYS[7 + p], id)
        redis.call('HSET', KEYS[6], id, now)
      elseif state == 'retrying' then
        redis.call('ZADD', KEYS[11 + p], tonumber(ARGV[i + 4]), id)
      else
        redis.call('RPUSH', KEYS[15 + p], id)
      end
    end
    settled = settled + 1
  end
end
return settled
