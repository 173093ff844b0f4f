-- rates (include): how many tasks of each tenant and priority went through each kind of step
-- (enqueued, succeeded, retried, dead, cancelled), in 10-second buckets: a hash per bucket,
-- `<rates prefix><bucket>`, field "tenant|priorityIndex|kind". Buckets expire after 90 s; GET
-- /queues sums the last six for "the last minute". A call adds one HINCRBY per field it touched
-- (a batch is usually one tenant and priority) and one PEXPIRE.
local RATE_BUCKET_MS = 10000
local rateCounts, rateFields = {}, {}

local function countRate(tenant, p, kind, n)
  local f = tenant .. '|' .. p .. '|' .. kind
  if not rateCounts[f] then
    rateFields[#rateFields + 1] = f
    rateCounts[f] = 0
  end
  rateCounts[f] = rateCounts[f] + (n or 1)
end

local function flushRates(prefix, nowMs)
  if #rateFields == 0 then return end
  local key = prefix .. math.floor(nowMs / RATE_BUCKET_MS)
  for _, f in ipairs(rateFields) do redis.call('HINCRBY', key, f, rateCounts[f]) end
  redis.call('PEXPIRE', key, 90000)
end
