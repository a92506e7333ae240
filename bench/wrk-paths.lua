-- wrk script for bench/tenant.py: like wrk.lua, but every request takes the next path from the
-- file named by BENCH_PATHS (one path per line), round robin; each wrk thread starts at another
-- offset. Used for "the tenant's namespaces listed one by one". The URL given to wrk only names
-- the server.
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
if os.getenv("BENCH_GZIP") == "1" then
  wrk.headers["Accept-Encoding"] = "gzip"
end

local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
  if line ~= "" then
    paths[#paths + 1] = line
  end
end

local threads = 0
function setup(thread)
  thread:set("offset", threads * 37)
  threads = threads + 1
end

local i = 0
function request()
  i = i + 1
  local n = ((offset or 0) + i - 1) % #paths + 1
  return wrk.format(nil, paths[n])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
