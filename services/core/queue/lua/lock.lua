-- lock: take or renew a named lock for `owner` (a leader lock for single-copy services).
-- KEYS: lock key
-- ARGV: owner, ttlMs, renewOnly ('1': only renew a lock `owner` still holds; one that lapsed is
--       not taken again, since another copy may have led meanwhile)
-- Returns: 1 = held by owner now, 0 = held by someone else (or lapsed, with renewOnly)
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] or (cur == false and ARGV[3] ~= '1') then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
