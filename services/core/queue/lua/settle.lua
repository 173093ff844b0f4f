-- settle: put tasks that no lease holds where Postgres says they are, when the normal fenced path
-- could not (a reclaimed lease whose attempt Postgres had already counted).
-- A task currently leased is left alone: its holder settles it. One Redis does not know is left
-- to the reconciler.
-- KEYS: processing, msg, meta, attempts, tokens, ready_at, q:critical..q:low (7-10),
--       retry:critical..retry:low (11-14), dlq:critical..dlq:low (15-18), doorbell (19)
-- ARGV: groups of 5: id, priorityIndex, state (queued|retrying|succeeded|dead), attempts, dueAtMs
-- Returns: how many tasks were settled
-- Rings the doorbell when it queued any, so an idle worker takes them at once.
-- @include placement
-- @include doorbell
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local settled, queued = 0, 0
for i = 1, #ARGV, 5 do
  if settle(ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]), now) then
    settled = settled + 1
    if ARGV[i + 2] == 'queued' then queued = queued + 1 end
  end
end
if queued > 0 then ring(KEYS[19]) end
return settled
