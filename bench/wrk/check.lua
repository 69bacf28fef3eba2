-- wrk script for bench/: every response must be 200 with the origin's exact 64-byte body.
-- BENCH_ORIGIN=HOST:PORT turns requests into absolute-form (for forward proxies); without it
-- the request is origin-form to the URL wrk was given (reverse proxies, direct).
local origin = os.getenv("BENCH_ORIGIN")
if origin and origin ~= "" then
  wrk.path = "http://" .. origin .. "/"
  wrk.headers["Host"] = origin
end

local expected = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
bad = 0 -- per thread (each wrk thread has its own Lua state), summed in done()
first_bad = ""

function response(status, headers, body)
  if status ~= 200 or body ~= expected then
    if bad == 0 then first_bad = tostring(status) .. " " .. tostring(body):sub(1, 80) end
    bad = bad + 1
  end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local badsum, first = 0, ""
  for _, t in ipairs(threads) do
    badsum = badsum + t:get("bad")
    if first == "" then first = t:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"bad_responses":%d,"p50_us":%.1f,"p99_us":%.1f,"first_bad":%q}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout, badsum,
    latency:percentile(50), latency:percentile(99), first))
end
