-- resync: align reclaimed tasks with Postgres after a lease that Postgres never saw start (the
-- worker died between leasing and recording the start, so the handler never ran). Their attempt
-- counter is set back to Postgres's, and one the reaper buried for being out of attempts goes
-- back to the front of its queue.
-- KEYS: attempts, ready_at, q:critical..q:low (3-6), dlq:critical..dlq:low (7-10)
-- ARGV: groups of 3: id, priorityIndex, attemptsInPostgres
-- Returns: number of tasks taken out of a dead-letter list
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local revived = 0
for i = 1, #ARGV, 3 do
  local id = ARGV[i]
  local p = tonumber(ARGV[i + 1])
  redis.call('HSET', KEYS[1], id, ARGV[i + 2])
  if redis.call('LREM', KEYS[7 + p], 0, id) > 0 then
    redis.call('LPUSH', KEYS[3 + p], id)
    redis.call('HSET', KEYS[2], id, now)
    revived = revived + 1
  end
end
return revived
