-- wrk script of `make bench`: replays pre-signed requests, each exactly once.
--
-- BENCH_REQUESTS=PREFIX: thread N reads PREFIX.N.txt, one request per line, the raw HTTP/1.1
-- request with its line breaks written as tabs (method, path+query, headers; no body). Without
-- BENCH_REQUESTS the script sends wrk's own static request (the URL given to wrk): the floor.
-- A thread that runs out of requests sends GET /__bench_exhausted (a 404, counted as an error)
-- rather than replay a nonce. done() prints one line: BENCH_JSON {...}.

local prefix = os.getenv("BENCH_REQUESTS")
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

if prefix ~= nil and prefix ~= "" then
  local requests = {}
  local count = 0
  local position = 0
  local fallback = nil
  exhausted = 0
  loaded = 0

  function init(args)
    local path = prefix .. "." .. id .. ".txt"
    local file = assert(io.open(path, "r"))
    for line in file:lines() do
      count = count + 1
      requests[count] = (line:gsub("\t", "\r\n")) .. "\r\n\r\n"
    end
    file:close()
    loaded = count
    fallback = "GET /__bench_exhausted HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port ..
      "\r\n\r\n"
  end

  function request()
    position = position + 1
    if position > count then
      exhausted = exhausted + 1
      return fallback
    end
    return requests[position]
  end
end

local function json_number(value)
  if value == nil then
    return "null"
  end
  return string.format("%.3f", value)
end

function done(summary, latency, requests)
  local exhausted_total = 0
  local loaded_total = 0
  for _, thread in ipairs(threads) do
    exhausted_total = exhausted_total + (tonumber(thread:get("exhausted")) or 0)
    loaded_total = loaded_total + (tonumber(thread:get("loaded")) or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
    "\"errors\": {\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, " ..
    "\"timeout\": %d}, \"exhausted\": %d, \"loaded\": %d, \"latency_us\": {\"min\": %s, " ..
    "\"mean\": %s, \"max\": %s, \"stdev\": %s, \"p50\": %s, \"p90\": %s, \"p99\": %s, " ..
    "\"p999\": %s}}\n",
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    exhausted_total, loaded_total,
    json_number(latency.min), json_number(latency.mean), json_number(latency.max),
    json_number(latency.stdev), json_number(latency:percentile(50)),
    json_number(latency:percentile(90)), json_number(latency:percentile(99)),
    json_number(latency:percentile(99.9))))
end
