-- settle: put tasks where Postgres says they are, when the normal fenced path could not (a
-- reclaimed lease whose attempt Postgres had already counted, or whose task it had finished).
-- An item with a token is a lease the reaper still holds (a task out of attempts, or a workflow
-- step): if that token is still current, the lease ends here, in the same step as the task moves.
-- Any other lease is left to its holder, and a task Redis does not know to the reconciler. A
-- tombstoned task is forgotten whatever Postgres said when it was read: an operator cancelled it.
-- KEYS: as in placement: processing, msg, meta, attempts, tokens, ready_at, retry (7-10), dlq (11-14),
--       tenant block (15-30); doorbell (31), tombstones (32)
-- ARGV: groups of 6: id, priorityIndex, state (a Postgres status, see placement's settle), attempts,
--       dueAtMs, token of the lease to end ('' = none)
-- Returns: how many tasks were settled
-- Rings the doorbell when it queued any, or a tenant parked at its cap has room again.
-- @include doorbell
-- @include bulk
-- @include tenants
-- @include placement
-- @include tombstones
useTombstones(KEYS[32])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local settled, queued = 0, 0
local ended = {}
for i = 1, #ARGV, 6 do
  local id, state, token = ARGV[i], ARGV[i + 2], ARGV[i + 5]
  if token ~= '' and redis.call('HGET', KEYS[5], id) == token then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[5], id)
    local tenant = tenantOfTask(KEYS[3], id)
    ended[tenant] = (ended[tenant] or 0) + 1
  end
  if tombstoned(id) then state = 'cancelled' end
  local res = settle(id, tonumber(ARGV[i + 1]), state, ARGV[i + 3], tonumber(ARGV[i + 4]), now)
  if res then
    settled = settled + 1
    if res == 'leasable' then queued = queued + 1 end
  end
end
if endLeases(ended) or queued > 0 then ring(KEYS[31]) end
return settled
