-- oldest (include, after bulk): when the longest-waiting task of a ready list became ready (ms,
-- Redis clock; 0 = none known). A list is FIFO by ready time except at its head: a task put back
-- there (reap, settle, a counted release) is ready since it went back, later than the tasks
-- behind it, so its head is not the oldest. Ready times fall from the head to the first task
-- queued at the tail end, then rise: the walk follows them down and stops at the first rise. A run
-- of equal times (one batch) is walked through, up to OLDEST_WALK tasks per list, which bounds the
-- cost of a scrape.
local OLDEST_WALK = 64

local function oldestReady(list, readyAtKey)
  local oldest, from, page = 0, 0, 2
  while from < OLDEST_WALK do
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
    page = math.min(page * 2, OLDEST_WALK - from)
  end
  return oldest
end
