-- settle: put tasks that no lease holds where Postgres says they are, when the normal fenced path
-- could not (a reclaimed lease whose attempt Postgres had already counted).
-- A task currently leased is left alone: its holder settles it. One Redis does not know is left
-- to the reconciler.
-- KEYS: as in placement: processing, msg, meta, attempts, tokens, ready_at, retry (7-10), dlq (11-14),
--       tenant block (15-26); doorbell (27)
-- ARGV: groups of 5: id, priorityIndex, state (queued|retrying|succeeded|dead), attempts, dueAtMs
-- Returns: how many tasks were settled
-- Rings the doorbell when it queued any, so an idle worker takes them at once.
-- @include doorbell
-- @include bulk
-- @include tenants
-- @include placement
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local settled, queued = 0, 0
for i = 1, #ARGV, 5 do
  local res = settle(ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]), now)
  if res then
    settled = settled + 1
    if res == 'leasable' then queued = queued + 1 end
  end
end
if queued > 0 then ring(KEYS[27]) end
return settled
