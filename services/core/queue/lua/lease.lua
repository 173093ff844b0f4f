-- lease: pop up to N ready tasks across priorities and lease each with a fresh token.
-- KEYS: q:critical, q:high, q:default, q:low, processing, msg, meta, attempts, tokens, ready_at, wrr
-- ARGV: n, visibilityMs, tokenBase, strict (1|0), weightCritical, weightHigh, weightDefault, weightLow
-- Returns: { nowMs, then per task: id, token, attempt, deadlineMs, messageJson, meta, readyAtMs }
-- Weighted mode is smooth weighted round-robin over the non-empty queues, with its state kept in
-- `wrr`, so a priority with weight w is served at least w/sum(weights) of the time while it has work.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local base = ARGV[3]
local strict = ARGV[4] == '1'
local len, w, cur = {}, {}, {}
for p = 1, 4 do
  len[p] = redis.call('LLEN', KEYS[p])
  w[p] = tonumber(ARGV[4 + p])
  cur[p] = tonumber(redis.call('HGET', KEYS[11], p) or '0')
end
local out = { now }
local leased = 0
while leased < n do
  local pick, total = nil, 0
  if strict then
    for p = 1, 4 do
      if len[p] > 0 then pick = p break end
    end
  else
    for p = 1, 4 do
      if len[p] > 0 then
        cur[p] = cur[p] + w[p]
        total = total + w[p]
        if pick == nil or cur[p] > cur[pick] then pick = p end
      end
    end
    if pick ~= nil then cur[pick] = cur[pick] - total end
  end
  if pick == nil then break end
  local id = redis.call('LPOP', KEYS[pick])
  len[pick] = len[pick] - 1
  if id then
    local msg = redis.call('HGET', KEYS[6], id)
    local meta = redis.call('HGET', KEYS[7], id)
    if msg and meta then
      leased = leased + 1
      local token = base .. ':' .. leased
      local attempt = redis.call('HINCRBY', KEYS[8], id, 1)
      redis.call('HSET', KEYS[9], id, token)
      redis.call('ZADD', KEYS[5], deadline, id)
      local ready = redis.call('HGET', KEYS[10], id) or now
      out[#out + 1] = id
      out[#out + 1] = token
      out[#out + 1] = attempt
      out[#out + 1] = deadline
      out[#out + 1] = msg
      out[#out + 1] = meta
      out[#out + 1] = ready
    end
    -- An id without its message is a leftover of a partial flush; the reconciler re-indexes it
    -- from Postgres, so it is dropped here rather than leased without a payload.
  end
end
if not strict then
  for p = 1, 4 do redis.call('HSET', KEYS[11], p, cur[p]) end
end
return out
