-- doorbell (include): wakes one waiting worker. The doorbell is a list holding at most one ring;
-- idle workers wait on it with BLPOP, so Redis hands each ring to exactly one of them (the one
-- waiting longest). Pub/sub woke every idle worker for every batch, and all but one then leased
-- nothing: with two workers, 57 % of lease calls in the burst came back empty, and the waste grows
-- with the number of workers. A worker that takes a ring and leaves work behind rings again
-- (lease.lua), so a big batch reaches as many workers as it needs, one after another.
local function ring(doorbell)
  if redis.call('LLEN', doorbell) == 0 then redis.call('RPUSH', doorbell, 1) end
end
