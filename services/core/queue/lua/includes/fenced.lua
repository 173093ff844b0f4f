-- fenced (include): for each task in ARGV groups of `size` (id, token, ...), if `token` is the
-- task's current lease token, end the lease (drop it from `processing` and `tokens`) and call
-- `after(id, i)` with the group's start index; otherwise change nothing.
-- Returns one integer per group: 1 = done, 0 = stale token.
local function forEachHeld(processing, tokens, size, after)
  local out = {}
  for i = 1, #ARGV, size do
    local id = ARGV[i]
    if redis.call('HGET', tokens, id) == ARGV[i + 1] then
      redis.call('ZREM', processing, id)
      redis.call('HDEL', tokens, id)
      after(id, i)
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
  return out
end
