-- oldest (include, after bulk): when the longest-waiting task of a ready list became ready (ms,
-- Redis clock; 0 = none known). A list is FIFO by ready time except at its head: a task put back
-- there (reap, settle, a counted release) is ready since it went back, later than the tasks
-- behind it, so its head is not the oldest. Ready times fall from the head to the first task
-- queued at the tail end, then rise: the walk follows them down and stops at the first rise.
-- It reads up to OLDEST_WALK tasks one by one; a run of equal times still going on there (one
-- batch enqueued, or put back by one reap: the oldest may wait behind it) is skipped across by
-- bisection, a few reads per run, and the walk goes on, up to OLDEST_SKIPS times per list: that
-- bounds the cost of a scrape.
local OLDEST_WALK = 64
local OLDEST_SKIPS = 4

-- Whether the task at index `i` is in the run of ready time `ms` (a task without one is too).
local function inRun(list, readyAtKey, i, ms)
  local id = redis.call('LINDEX', list, i)
  if not id then return false end
  local at = tonumber(redis.call('HGET', readyAtKey, id) or '0') or 0
  return at == ms or at == 0
end

-- The first index after `last` (a task of the run of `ms`) whose task is not in that run, or past
-- the end of the list: steps doubling from `last`, then bisection.
local function endOfRun(list, readyAtKey, last, ms)
  local lo, step = last, 1
  while inRun(list, readyAtKey, lo + step, ms) do
    lo = lo + step
    step = step * 2
  end
  local hi = lo + step
  while hi - lo > 1 do
    local mid = math.floor((lo + hi) / 2)
    if inRun(list, readyAtKey, mid, ms) then lo = mid else hi = mid end
  end
  return hi
end

local function oldestReady(list, readyAtKey)
  local oldest, from, page, walked, skips = 0, 0, 2, 0, 0
  while true do
    local ids = redis.call('LRANGE', list, from, from + page - 1)
    for _, at in ipairs(hmget(readyAtKey, ids)) do
      local ms = tonumber(at or '0') or 0
      if ms > 0 then
        if oldest > 0 and ms > oldest then return oldest end
        oldest = ms
      end
    end
    if #ids < page then return oldest end
    from = from + page
    walked = walked + page
    if walked < OLDEST_WALK then
      page = math.min(page * 2, OLDEST_WALK - walked)
    else
      -- No rise yet: the last task read is of the run of `oldest` (or the walk knows no time).
      if oldest == 0 or skips >= OLDEST_SKIPS then return oldest end
      skips = skips + 1
      from = endOfRun(list, readyAtKey, from - 1, oldest)
      walked, page = 0, 2
    end
  end
end
