-- heap (include): a binary min-heap of tables ordered by (pass, seq), for stride scheduling.
local function heapLess(a, b)
  return a.pass < b.pass or (a.pass == b.pass and a.seq < b.seq)
end

local function heapPush(h, e)
  local i = #h + 1
  h[i] = e
  while i > 1 do
    local parent = math.floor(i / 2)
    if not heapLess(h[i], h[parent]) then break end
    h[i], h[parent] = h[parent], h[i]
    i = parent
  end
end

local function heapPop(h)
  local top = h[1]
  local last = #h
  h[1] = h[last]
  h[last] = nil
  last = last - 1
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= last and heapLess(h[l], h[m]) then m = l end
    if r <= last and heapLess(h[r], h[m]) then m = r end
    if m == i then break end
    h[i], h[m] = h[m], h[i]
    i = m
  end
  return top
end
