-- SPDX-License-Identifier: Apache-2.0
-- profkit's wrk hooks. done(): one line "profkit-wrk: {json}" after wrk's own summary, with the
-- figures wrk's text does not give (p99.9, a percentile curve, error kinds, exact counts), and
-- one line "profkit-wrk-series: {json}" with the responses (and non-2xx/3xx responses) each
-- thread counted per epoch second in response(). Latencies are in microseconds, as wrk keeps them.
local points = {1, 5, 10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 95, 97.5, 99, 99.5, 99.9, 99.99}
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

init = function(args)
  counts, bad = {}, {}
end

response = function(status, headers, body)
  local s = os.time()
  counts[s] = (counts[s] or 0) + 1
  if status < 200 or status > 399 then
    bad[s] = (bad[s] or 0) + 1
  end
end

local function merge(into, from)
  for s, n in pairs(from or {}) do
    into[s] = (into[s] or 0) + n
  end
end

local function encode(t)
  local parts = {}
  for s, n in pairs(t) do
    parts[#parts + 1] = string.format('"%d":%d', s, n)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

done = function(summary, latency, requests)
  local e = summary.errors
  local pct = {}
  for _, p in ipairs(points) do
    pct[#pct + 1] = string.format("[%s,%d]", tostring(p), latency:percentile(p))
  end
  io.write(string.format(
    'profkit-wrk: {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.3f,"max":%d,"stdev":%.3f},"percentiles_us":[%s]}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    summary.requests > 0 and latency.min or 0, latency.mean, latency.max, latency.stdev,
    table.concat(pct, ",")))
  local all, errs = {}, {}
  for _, t in ipairs(threads) do
    merge(all, t:get("counts"))
    merge(errs, t:get("bad"))
  end
  io.write('profkit-wrk-series: {"responses":' .. encode(all) .. ',"errors":' .. encode(errs) .. '}\n')
end
