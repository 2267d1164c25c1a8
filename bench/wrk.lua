-- wrk script of the benchmark kit (bench/run.sh). One script for every case,
-- chosen by BENCH_MODE; done() prints one BENCH_RESULT line the kit parses.
--
--   get      the request given on wrk's command line (URL and -H headers),
--            built once: no Lua runs per request, as in a plain wrk run.
--   put      PUT a key never written before: BENCH_PATH_PREFIX .. BENCH_KEY_PREFIX
--            .. "-" .. thread .. "-" .. n, body BENCH_BODY.
--   delete   DELETE BENCH_PATH_PREFIX .. BENCH_KEY_PREFIX .. i for i = thread,
--            thread + BENCH_THREADS, ... : the keys the seeder wrote (it names
--            them prefix0, prefix1, ...), each deleted once. Requests past
--            BENCH_POOL keys delete absent keys (still 204); done() counts them.
--   getrand  GET a random key (BENCH_KEY_PREFIX .. 0 .. BENCH_KEYS_PER_TENANT-1)
--            of a random tenant from BENCH_KEYS_FILE ("tenant apikey" per line),
--            with that tenant's API key.
-- Auth and content-type headers of put and delete come from wrk's -H flags.
local mode     = os.getenv("BENCH_MODE") or "get"
local pprefix  = os.getenv("BENCH_PATH_PREFIX") or "/api/t1/secrets/"
local kprefix  = os.getenv("BENCH_KEY_PREFIX") or "k"
local body     = os.getenv("BENCH_BODY") or '{"value":"value-0123456789abcdef"}'
local stride   = tonumber(os.getenv("BENCH_THREADS") or "1")
local pool     = tonumber(os.getenv("BENCH_POOL") or "0")

local nthreads = 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end

local counter = 0
local tenants, keys, perTenant

function init(args)
  counter = 0
  if mode == "delete" then
    -- wrk (4.1) calls thread 0's request() once after init to check it,
    -- and never sends that request: let it take a key number no one has.
    counter = tid
    if tid == 0 then counter = -stride end
  elseif mode == "getrand" then
    tenants, keys = {}, {}
    for line in io.lines(os.getenv("BENCH_KEYS_FILE")) do
      local t, k = line:match("^(%S+)%s+(%S+)$")
      if t then
        tenants[#tenants + 1] = t
        keys[#keys + 1] = k
      end
    end
    perTenant = tonumber(os.getenv("BENCH_KEYS_PER_TENANT") or "1")
    math.randomseed(os.time() + tid)
  end
end

if mode == "put" then
  request = function()
    counter = counter + 1
    return wrk.format("PUT", pprefix .. kprefix .. "-" .. tostring(tid) .. "-" .. tostring(counter), nil, body)
  end
elseif mode == "delete" then
  request = function()
    local i = counter
    counter = counter + stride
    return wrk.format("DELETE", pprefix .. kprefix .. tostring(i))
  end
elseif mode == "getrand" then
  request = function()
    local t = math.random(#tenants)
    local k = math.random(perTenant) - 1
    return wrk.format("GET", "/api/" .. tenants[t] .. "/secrets/" .. kprefix .. tostring(k), { ["X-API-KEY"] = keys[t] })
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local absent = 0
  if mode == "delete" and pool > 0 and summary.requests > pool then
    absent = summary.requests - pool
  end
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d rps=%.2f p50_us=%.1f p99_us=%.1f non2xx=%d sockerr=%d absent=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout, absent))
end
