-- bulk (include): one variadic command per batch instead of one command per task. Every
-- redis.call costs Redis about a microsecond beyond its work, which at a few commands per task was
-- most of a script's time. Long lists go in chunks that Lua's unpack can take (an even size, so
-- field/value and score/member pairs never split).
local CHUNK = 4000

-- `cmd key args...` for a list of arguments; nothing when the list is empty.
local function bulk(cmd, key, args)
  for i = 1, #args, CHUNK do
    redis.call(cmd, key, unpack(args, i, math.min(i + CHUNK - 1, #args)))
  end
end

-- HMGET of many fields: values in field order, false where a field is missing.
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, CHUNK do
    local got = redis.call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))
    for j = 1, #got do out[#out + 1] = got[j] end
  end
  return out
end

-- The first field (the task id) of each group of `size` arguments in ARGV.
local function argvIds(size)
  local ids = {}
  for i = 1, #ARGV, size do ids[#ids + 1] = ARGV[i] end
  return ids
end
