-- unlock: give up a lock only if `owner` still holds it.
-- KEYS: lock key
-- ARGV: owner
-- Returns: 1 = released, 0 = not held by owner
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
