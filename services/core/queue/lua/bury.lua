-- bury: move leased tasks to their priority's dead-letter list; the message stays for redrive.
-- KEYS: processing, tokens, dlq:critical, dlq:high, dlq:default, dlq:low
-- ARGV: groups of 3: id, token, priorityIndex
-- Returns: one integer per task: 1 = buried, 0 = stale token (nothing changed)
-- @include fenced
return forEachHeld(KEYS[1], KEYS[2], 3, function(id, i)
  redis.call('RPUSH', KEYS[3 + tonumber(ARGV[i + 2])], id)
end)
