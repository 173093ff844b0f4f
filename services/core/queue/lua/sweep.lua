-- sweep: every task Redis knows (it has `meta`) sits in exactly one place: a ready list, the
-- processing set, a retry set or a dead-letter list; every script moves tasks between them in one
-- step. A known task in none of them would never be leased again while the reconciler, which only
-- asks whether Redis knows a task, saw nothing wrong. This checks the invariant by counting (O(1),
-- every reconciler pass) and only when the counts disagree looks for the culprits (O(tasks held),
-- a repair path): known tasks held nowhere are forgotten, so the reconciler indexes them again from
-- Postgres; entries without `meta` (they can never run) are removed so the counts meet again.
-- Ids held twice are only counted: which copy is right is not Redis's to say. The caller passes
-- back how many it was told of, and an excess of exactly that many is not searched again (so a
-- duplicate costs one search, not one per pass).
-- KEYS: msg, meta, attempts, tokens, ready_at, processing, q:critical..q:low (7-10),
--       retry:critical..retry:low (11-14), dlq:critical..dlq:low (15-18)
-- ARGV: the most known-but-unheld tasks to forget in this call, ids held twice known already
-- Returns: { known, held, orphans removed, ids held twice, forgotten ids... }
local CHUNK = 1000
local LISTS = { 7, 8, 9, 10, 15, 16, 17, 18 }
local ZSETS = { 6, 11, 12, 13, 14 }

local held = 0
for _, k in ipairs(LISTS) do held = held + redis.call('LLEN', KEYS[k]) end
for _, k in ipairs(ZSETS) do held = held + redis.call('ZCARD', KEYS[k]) end
local known = redis.call('HLEN', KEYS[2])
local twiceBefore = tonumber(ARGV[2])
if held == known + twiceBefore then return { known, held, 0, twiceBefore } end

-- Where each held id is (the key's index), read in chunks so no single reply is huge.
local where, twice = {}, 0
local function note(ids, k)
  for _, id in ipairs(ids) do
    if where[id] then twice = twice + 1 else where[id] = k end
  end
end
for _, k in ipairs(LISTS) do
  local n = redis.call('LLEN', KEYS[k])
  for i = 0, n - 1, CHUNK do note(redis.call('LRANGE', KEYS[k], i, i + CHUNK - 1), k) end
end
for _, k in ipairs(ZSETS) do
  local n = redis.call('ZCARD', KEYS[k])
  for i = 0, n - 1, CHUNK do note(redis.call('ZRANGE', KEYS[k], i, i + CHUNK - 1), k) end
end

local orphans = 0
for id, k in pairs(where) do
  if redis.call('HEXISTS', KEYS[2], id) == 0 then
    if k == 6 or (k >= 11 and k <= 14) then redis.call('ZREM', KEYS[k], id) else redis.call('LREM', KEYS[k], 0, id) end
    redis.call('HDEL', KEYS[4], id)
    orphans = orphans + 1
  end
end

local out = { known, held, orphans, twice }
local limit = tonumber(ARGV[1])
local gone = {}
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[2], cursor, 'COUNT', CHUNK)
  cursor = page[1]
  local fields = page[2]
  for i = 1, #fields, 2 do
    local id = fields[i]
    -- (HSCAN may return a field twice.)
    if not where[id] and not gone[id] and #out - 4 < limit then
      for k = 1, 5 do redis.call('HDEL', KEYS[k], id) end
      gone[id] = true
      out[#out + 1] = id
    end
  end
until cursor == '0' or #out - 4 >= limit
return out
