-- mark: compare-and-set of the delayed-task loader's mark (how far ahead the tasks waiting in
-- Postgres have been brought into this keyspace's due-time sets: "ms", or "ms:id" when a pass
-- stopped inside the tasks due at ms; see redis-queue.ts parseDueMark). Set only if it still
-- holds what the loader read before its pass: a mark lost meanwhile (Redis lost its data, and the
-- tasks loaded with it) stays lost, so the next pass loads from the start again.
-- KEYS: mark
-- ARGV: expected ('' = absent), new value
-- Returns: 1 = set, 0 = it had changed
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
