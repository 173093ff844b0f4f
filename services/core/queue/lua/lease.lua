-- lease: pop up to N ready tasks across priorities and lease each with a fresh token.
-- KEYS: q:critical, q:high, q:default, q:low, processing, msg, meta, attempts, tokens, ready_at, wrr, doorbell (12)
-- ARGV: n, visibilityMs, tokenBase, strict (1|0), weightCritical, weightHigh, weightDefault, weightLow
-- Returns: { nowMs, tasks left ready, then per task: id, attempt, messageJson, meta, readyAtMs }; the
-- k-th task's token is tokenBase .. ':' .. k and every deadline is nowMs + visibilityMs (the caller
-- builds them rather than parse them once per task).
-- Weighted mode is smooth weighted round-robin over the non-empty queues, with its state kept in
-- `wrr`, so a priority with weight w is served at least w/sum(weights) of the time while it has work.
-- The picks are decided first; then each priority's share is popped and leased with a few
-- variadic commands per call, whatever the batch size.
-- @include bulk
-- @include doorbell
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local base = ARGV[3]
local strict = ARGV[4] == '1'
local wrr = redis.call('HMGET', KEYS[11], 1, 2, 3, 4)
local len, w, cur, take = {}, {}, {}, { 0, 0, 0, 0 }
for p = 1, 4 do
  len[p] = redis.call('LLEN', KEYS[p])
  w[p] = tonumber(ARGV[4 + p])
  cur[p] = tonumber(wrr[p] or '0')
end
local picks = {}
while #picks < n do
  local pick, total = nil, 0
  if strict then
    for p = 1, 4 do
      if len[p] > take[p] then pick = p break end
    end
  else
    for p = 1, 4 do
      if len[p] > take[p] then
        cur[p] = cur[p] + w[p]
        total = total + w[p]
        if pick == nil or cur[p] > cur[pick] then pick = p end
      end
    end
    if pick ~= nil then cur[pick] = cur[pick] - total end
  end
  if pick == nil then break end
  take[pick] = take[pick] + 1
  picks[#picks + 1] = pick
end
local left = 0
for p = 1, 4 do left = left + len[p] - take[p] end
-- Work left behind wakes another idle worker; a ring no task is left for would only cost the
-- next waiter an empty lease, so it is taken back.
if left > 0 then ring(KEYS[12]) else redis.call('DEL', KEYS[12]) end
if #picks == 0 then return { now, left } end
-- Pop each priority's share at once, then hand ids out in pick order (the rotation's interleaving).
local popped, nextOf = {}, { 1, 1, 1, 1 }
for p = 1, 4 do
  popped[p] = take[p] > 0 and redis.call('LPOP', KEYS[p], take[p]) or {}
end
-- An id is leased once per call even if it was queued twice (no script queues a task twice, but
-- two tokens for one task in one reply would run it twice).
local ids, seen = {}, {}
for _, p in ipairs(picks) do
  local id = popped[p][nextOf[p]]
  nextOf[p] = nextOf[p] + 1
  if id and not seen[id] then
    seen[id] = true
    ids[#ids + 1] = id
  end
end
local msgs, metas, attempts, readyAt = hmget(KEYS[6], ids), hmget(KEYS[7], ids), hmget(KEYS[8], ids), hmget(KEYS[10], ids)
local out = { now, left }
local counted, tokens, leasedAt = {}, {}, {}
local leased = 0
for i, id in ipairs(ids) do
  -- An id without its message is a leftover of a partial flush; the reconciler re-indexes it
  -- from Postgres, so it is dropped here rather than leased without a payload.
  if msgs[i] and metas[i] then
    leased = leased + 1
    local token = base .. ':' .. leased
    local attempt = tonumber(attempts[i] or '0') + 1
    counted[#counted + 1] = id
    counted[#counted + 1] = attempt
    tokens[#tokens + 1] = id
    tokens[#tokens + 1] = token
    leasedAt[#leasedAt + 1] = deadline
    leasedAt[#leasedAt + 1] = id
    out[#out + 1] = id
    out[#out + 1] = attempt
    out[#out + 1] = msgs[i]
    out[#out + 1] = metas[i]
    out[#out + 1] = readyAt[i] or now
  end
end
bulk('HSET', KEYS[8], counted)
bulk('HSET', KEYS[9], tokens)
bulk('ZADD', KEYS[5], leasedAt)
if not strict then redis.call('HSET', KEYS[11], 1, cur[1], 2, cur[2], 3, cur[3], 4, cur[4]) end
return out
