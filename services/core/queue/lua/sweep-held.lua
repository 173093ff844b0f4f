-- sweep-held: one page of the sweep's repair (see sweep.lua), first part. Reads up to `count`
-- entries of one held structure (a ready or dead-letter list, the processing set or a retry set)
-- from `offset`, removes those of tasks Redis does not know (orphans: they could never run), and
-- adds the others to the pass's set of held ids. An entry that moves between pages may be missed
-- or seen twice: the pass's last part checks every id it would forget against each place itself
-- (sweep-unheld.lua), so a miss costs a look, never a task; ids held twice are counted after the
-- repair, in one script (redis-queue.ts sweep).
-- KEYS: the pass's held-id set (1), the structure (2), meta (3), tokens (4)
-- ARGV: '1' for a sorted set (else a list), offset, count, ms the held-id set is kept (an
--       interrupted pass's set lapses)
-- Returns: { entries read, orphans removed, next offset }
local isZset = ARGV[1] == '1'
local offset, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local ids
if isZset then
  ids = redis.call('ZRANGE', KEYS[2], offset, offset + count - 1)
else
  -- From the tail: leases pop ready lists at the head, which shifts every index counted from the
  -- head, so pages counted from it skip entries (each then a whole-list LPOS in sweep-unheld);
  -- counted from the tail, a pop or a push at the head moves nothing, and a push at the tail only
  -- makes an entry read twice.
  ids = redis.call('LRANGE', KEYS[2], -(offset + count), -(offset + 1))
end
if #ids == 0 then return { 0, 0, offset } end

local metas = redis.call('HMGET', KEYS[3], unpack(ids))
local orphans, removed, known = 0, 0, {}
local gone = {}
for i, id in ipairs(ids) do
  if metas[i] then
    known[#known + 1] = id
  else
    -- Every entry of it in this page goes: the next page starts that many entries earlier.
    removed = removed + 1
    if not gone[id] then
      gone[id] = true
      if isZset then redis.call('ZREM', KEYS[2], id) else redis.call('LREM', KEYS[2], 0, id) end
      redis.call('HDEL', KEYS[4], id)
      orphans = orphans + 1
    end
  end
end
if #known > 0 then
  redis.call('SADD', KEYS[1], unpack(known))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return { #ids, orphans, offset + #ids - removed }
