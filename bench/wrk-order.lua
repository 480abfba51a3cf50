-- wrk script of the HTTP benchmarks: POST /order (or the floor route) with a fresh order_id
-- per request (a repeated id without an Idempotency-Key would run anyway, but ids stay
-- unique for the record), every simulated step at 1 ms unless WRK_ORDER_FIELDS says other
-- fields. Prints the statuses that were not 2xx.
local counter = 0
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9))
local statuses = {}
-- The order's fields but its id, as JSON members (WRK_ORDER_FIELDS, set by bench/http-load.ts).
local fields = os.getenv("WRK_ORDER_FIELDS") or
  '"amount":1250,"delay_ms":{"payment":1,"vendor":1,"courier":1}'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  local body = '{"order_id":"bench-' .. prefix .. '-' .. counter .. '",' .. fields .. '}'
  return wrk.format(nil, nil, nil, body)
end

response = function(status)
  if status >= 300 then statuses[status] = (statuses[status] or 0) + 1 end
end

done = function(summary, latency)
  io.write(string.format("RESULT requests=%d seconds=%.3f p50=%.3f p99=%.3f max=%.3f errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
