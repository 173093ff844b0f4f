-- lock: take or renew a named lock for `owner` (a leader lock for single-copy services).
-- KEYS: lock key
-- ARGV: owner, ttlMs
-- Returns: 1 = held by owner now, 0 = held by someone else
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
