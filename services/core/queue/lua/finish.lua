-- finish: end leases with the outcomes Postgres has recorded, a whole batch of mixed outcomes in
-- one step: succeeded → the task is forgotten; retrying → its priority's retry set, due delayMs
-- from now (Redis clock); dead → its priority's dead-letter list (the message stays for redrive).
-- Only the current lease holder finishes a task (fenced by the token). An item with a `settle`
-- attempt count carries an outcome Postgres applied: if its lease is gone (Redis lost data and a
-- rebuilt copy waits again), that copy is moved where Postgres says, unless a lease holds it now.
-- KEYS: as in placement: processing, msg, meta, attempts, tokens, ready_at, q (7-10), retry (11-14), dlq (15-18)
-- ARGV: groups of 6: id, token, outcome (s|r|d), priorityIndex, delayMs, settle (attempts Postgres counted; 0 = do not settle)
-- Returns: one integer per item: 1 = finished under its lease, 2 = lease gone but settled, 0 = nothing changed
-- @include placement
local STATE = { s = 'succeeded', r = 'retrying', d = 'dead' }
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #ARGV, 6 do
  local id, outcome, p = ARGV[i], ARGV[i + 2], tonumber(ARGV[i + 3])
  local due = now + tonumber(ARGV[i + 4])
  if redis.call('HGET', KEYS[5], id) == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[5], id)
    if outcome == 's' then
      forget(id)
    elseif outcome == 'r' then
      redis.call('ZADD', KEYS[11 + p], due, id)
    else
      redis.call('RPUSH', KEYS[15 + p], id)
    end
    out[#out + 1] = 1
  elseif ARGV[i + 5] ~= '0' and settle(id, p, STATE[outcome], ARGV[i + 5], due, now) then
    out[#out + 1] = 2
  else
    out[#out + 1] = 0
  end
end
return out
