-- placement (include, after tenants): put a task where Postgres says it is. Scripts that include it
-- take the KEYS layout: processing (1), msg (2), meta (3), attempts (4), tokens (5), ready_at (6),
-- retry:critical..retry:low (7-10), dlq:critical..dlq:low (11-14), tenant block (15-30).
tenantKeys(15)

-- Forgets every trace of a task whose outcome is final and whose lease has ended.
local function forget(id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[6], id)
end

-- Moves a task no lease holds to where Postgres says it is, `state` being its status there: queued
-- (ready), retrying (the retry set, due at dueAtMs), dead (the dead-letter list), with `attempts`
-- counted; succeeded and cancelled (final) or waiting (a step whose dependencies' success pushes
-- it) are forgotten. For when the fenced path could not. A task leased now is left to its holder,
-- and one Redis does not know at all to the reconciler: both return false. Returns 'leasable' when
-- it queued the task where a worker may lease it now.
local function settle(id, p, state, attempts, dueAtMs, now)
  if redis.call('ZSCORE', KEYS[1], id) or redis.call('HEXISTS', KEYS[2], id) == 0 then return false end
  local tenant = tenantOfTask(KEYS[3], id)
  -- A tenant whose list this empties stays in its ring until a lease finds the list empty.
  redis.call('LREM', listKey(p + 1, tenant), 0, id)
  redis.call('ZREM', KEYS[7 + p], id)
  redis.call('LREM', KEYS[11 + p], 0, id)
  redis.call('HDEL', KEYS[5], id)
  if state ~= 'queued' and state ~= 'retrying' and state ~= 'dead' then
    forget(id)
    return true
  end
  redis.call('HSET', KEYS[4], id, attempts)
  if state == 'queued' then
    redis.call('HSET', KEYS[6], id, now)
    return pushReady(p + 1, tenant, { id }, true) and 'leasable' or true
  elseif state == 'retrying' then
    redis.call('ZADD', KEYS[7 + p], dueAtMs, id)
  else
    redis.call('RPUSH', KEYS[11 + p], id)
  end
  return true
end
