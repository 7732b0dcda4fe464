-- wrk script for scripts/bench-webhook.sh: posts the notification in the
-- file WRK_PAYLOAD, its call id replaced by one of WRK_CALLS generated ids
-- in turn (as botd-loadgen does), so botd's store holds WRK_CALLS calls.
-- WRK_PAYLOAD may name several files, comma separated: each call then gets
-- them in turn, one per pass over the calls (two call states alternating
-- make every request change its call).
-- WRK_AUTH, when set, is sent as the Authorization header of every request
-- (one reused token, as Graph does). The requests are formatted once, in
-- init, so that wrk spends no time building them.
local reqs, n, i = {}, 0, 0

local function build(path, calls, headers)
  local f = assert(io.open(path, "rb"))
  local body = f:read("*a")
  f:close()
  local id = body:match("/calls/(%x+%-%x+%-%x+%-%x+%-%x+)")
  for k = 0, calls - 1 do
    local b = body
    if id ~= nil then
      local new = string.format("0b0d1a0d-%04x-4%03x-8%03x-%012x",
        math.floor(k / 16777216) % 65536, math.floor(k / 4096) % 4096, k % 4096, k)
      b = body:gsub(id:gsub("%-", "%%-"), new)
    end
    reqs[#reqs + 1] = wrk.format("POST", nil, headers, b)
  end
end

function init(args)
  local calls = tonumber(os.getenv("WRK_CALLS") or "1000")
  local headers = { ["Content-Type"] = "application/json" }
  local auth = os.getenv("WRK_AUTH")
  if auth ~= nil and auth ~= "" then
    headers["Authorization"] = auth
  end
  for path in string.gmatch(os.getenv("WRK_PAYLOAD"), "[^,]+") do
    build(path, calls, headers)
  end
  n = #reqs
  -- Each wrk thread starts at its own place in the ids.
  i = math.random(n) - 1
end

function request()
  i = i % n + 1
  return reqs[i]
end
