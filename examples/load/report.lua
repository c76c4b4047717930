-- SPDX-License-Identifier: Apache-2.0
-- wrk report hook for load.sh: a short summary, then one JSON line with the same keys as load.py.
local function ms(us) return us / 1000.0 end

done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local secs = summary.duration / 1e6
  local rps = secs > 0 and summary.requests / secs or 0
  io.write(string.format("requests %d in %.2fs (%.1f/s), errors %d, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    summary.requests, secs, rps, errors, ms(latency:percentile(50)), ms(latency:percentile(99)), ms(latency.max)))
  io.write(string.format(
    '{"tool":"wrk","url":"%s","connections":%d,"duration_s":%.3f,"requests":%d,"rps":%.2f,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"error_count":%d,' ..
    '"latency_ms":{"mean":%.3f,"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f}}\n',
    os.getenv("LOAD_URL") or "", tonumber(os.getenv("LOAD_CONNECTIONS") or "0"), secs, summary.requests, rps,
    summary.bytes, e.connect, e.read, e.write, e.status, e.timeout, errors,
    ms(latency.mean), ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency.max)))
end
