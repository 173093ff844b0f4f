-- release: hand leased tasks back to the front of their queue without counting the attempt
-- (graceful shutdown, or Postgres unavailable when the lease was taken).
-- KEYS: processing, tokens, attempts, q:critical, q:high, q:default, q:low
-- ARGV: groups of 3: id, token, priorityIndex
-- Returns: one integer per task: 1 = released, 0 = stale token (nothing changed)
-- @include fenced
return forEachHeld(KEYS[1], KEYS[2], 3, function(id, i)
  redis.call('HINCRBY', KEYS[3], id, -1)
  redis.call('LPUSH', KEYS[4 + tonumber(ARGV[i + 2])], id)
end)
