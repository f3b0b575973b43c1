-- wrk script for bench/bench_overload.py: counts statuses (and refusals without Retry-After)
-- per thread and prints them, with latency percentiles, as one JSON line when done.
-- Arguments: mode ("hit" or "cold"), a tag, the number of distinct client addresses, the number
-- of prepared hit cards, and the pause (ms) of a hit client between two requests.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "hit"
  tag = args[2] or "x"
  addresses = tonumber(args[3] or "100")
  hits = tonumber(args[4] or "16")
  think = tonumber(args[5] or "0")
  n = 0
  s200, s429, s503, sother, noretry = 0, 0, 0, 0, 0
end

function request()
  n = n + 1
  local path
  if mode == "hit" then
    path = "/og.png?title=Hit+card+" .. (n % hits) .. "&subtitle=made+before+the+storm"
  else
    path = "/og.png?title=Cold+" .. tag .. "-" .. id .. "-" .. n .. "&v=ov"
  end
  local client = "10." .. mode:len() .. "." .. (id % 250) .. "." .. (n % addresses)
  return wrk.format("GET", path, {["X-Forwarded-For"] = client})
end

-- Hit clients pause between requests, as crawlers do; cold clients press without a pause.
function delay()
  if mode == "hit" then return think end
  return 0
end

function response(status, headers, body)
  if status == 200 then s200 = s200 + 1
  elseif status == 429 or status == 503 then
    if status == 429 then s429 = s429 + 1 else s503 = s503 + 1 end
    if headers["retry-after"] == nil and headers["Retry-After"] == nil then
      noretry = noretry + 1
    end
  else sother = sother + 1 end
end

function done(summary, latency, requests)
  local t = {s200 = 0, s429 = 0, s503 = 0, sother = 0, noretry = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  local e = summary.errors
  io.write(string.format(
    '{"200":%d,"429":%d,"503":%d,"other_status":%d,"no_retry_after":%d,' ..
    '"socket_errors":%d,"requests":%d,"p50_ms":%.3f,"p99_ms":%.3f}\n',
    t.s200, t.s429, t.s503, t.sother, t.noretry,
    e.connect + e.read + e.write + e.timeout, summary.requests,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
