-- admit: admit n tasks of a tenant, or none: a token bucket (tasks per second, with a burst) and
-- a cap on unfinished tasks, checked and consumed together so any number of API replicas share them.
-- KEYS: buckets (hash: <tenant>:t tokens, <tenant>:at ms), admitted (hash), unfinished base (hash),
--       admitted at base (hash), in flight (zset: '<tenant> <n> <reservation>' scored by expiry ms)
-- ARGV: tenant, n, rate (per s, 0 = none), burst, maxUnfinished (0 = none), reservation id, reservation ttl ms,
--       indivisible ('1': n tasks that cannot be sent apart, such as a workflow's steps)
-- An indivisible request larger than the burst is admitted once the bucket is full, and leaves it
-- owing (tokens below zero): the tenant's rate over time holds, and such a request can pass at all.
-- Under a cap the admission is also recorded as in flight until its request settles (or the ttl
-- passes): a true-up counts it, as Postgres may not hold its task yet (see admission.ts).
-- Returns: { 1, '', tokensLeft, msUntilFull } admitted;
--          { 0, 'rate', tokens, msUntilEnough } / { 0, 'burst', burst, 0 } / { 0, 'quota', unfinished, 0 } refused.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tenant, n = ARGV[1], tonumber(ARGV[2])
local rate, burst, maxUnfinished = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local tokens = burst
if rate > 0 then
  local need = n
  if n > burst then
    if ARGV[8] ~= '1' then return { 0, 'burst', burst, 0 } end
    need = burst
  end
  local st = redis.call('HMGET', KEYS[1], tenant .. ':t', tenant .. ':at')
  if st[1] then
    local at = tonumber(st[2])
    -- Dated ahead of this clock (it ran ahead and was set back, or another master's was ahead):
    -- the bucket refills from now on, where nothing refilled until the clock caught up with it.
    if at > now then
      at = now
      redis.call('HSET', KEYS[1], tenant .. ':at', now)
    end
    tokens = math.min(burst, tonumber(st[1]) + (now - at) * rate / 1000)
  end
  if tokens < need then return { 0, 'rate', math.max(0, math.floor(tokens)), math.ceil((need - tokens) * 1000 / rate) } end
end
if maxUnfinished > 0 then
  -- Unfinished = Postgres's count at the last true-up + what was admitted since (see admission.ts).
  local admitted = tonumber(redis.call('HGET', KEYS[2], tenant) or '0')
  local base = tonumber(redis.call('HGET', KEYS[3], tenant) or '0')
  local admittedAtBase = tonumber(redis.call('HGET', KEYS[4], tenant) or '0')
  local unfinished = math.max(0, base + admitted - admittedAtBase)
  if unfinished + n > maxUnfinished then return { 0, 'quota', unfinished, 0 } end
  redis.call('HINCRBY', KEYS[2], tenant, n)
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[7]), tenant .. ' ' .. n .. ' ' .. ARGV[6])
end
if rate > 0 then
  tokens = tokens - n
  redis.call('HSET', KEYS[1], tenant .. ':t', tostring(tokens), tenant .. ':at', now)
  return { 1, '', math.max(0, math.floor(tokens)), math.ceil((burst - tokens) * 1000 / rate) }
end
return { 1, '', 0, 0 }
