-- wrk script: POST one fixed body, each request with the next header set of a pool (in turn),
-- then print the run's figures as one JSON line (as post.lua does).
--   wrk -t1 -cN -dS --latency -s post_pool.lua URL -- BODY_FILE CONTENT_TYPE HEADERS_FILE
-- HEADERS_FILE: one request per line, its headers as "Name: value" fields separated by tabs
-- (a pool of requests signed beforehand, so that the client only picks one).
local requests = {}
local count = 0
local next_one = 0

function init(args)
  local f = assert(io.open(args[1], "rb"), "cannot open body file " .. tostring(args[1]))
  local body = f:read("*a")
  f:close()
  for line in io.lines(args[3]) do
    if line ~= "" then
      local headers = { ["Content-Type"] = args[2] }
      for field in string.gmatch(line, "[^\t]+") do
        local name, value = string.match(field, "^([^:]+):%s*(.*)$")
        assert(name ~= nil, "not a Name: value field: " .. field)
        headers[name] = value
      end
      count = count + 1
      requests[count] = wrk.format("POST", nil, headers, body)
    end
  end
  assert(count > 0, "no requests in " .. tostring(args[3]))
end

function request()
  next_one = next_one % count + 1
  return requests[next_one]
end

function done(summary, latency, requests_done)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
