-- ack: forget tasks whose outcome is final, only for the current lease holder.
-- KEYS: processing, msg, meta, attempts, tokens, ready_at
-- ARGV: pairs id, token
-- Returns: one integer per pair: 1 = acked, 0 = stale token (nothing changed)
-- @include fenced
return forEachHeld(KEYS[1], KEYS[5], 2, function(id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[6], id)
end)
