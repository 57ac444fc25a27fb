-- wrk script for the "post" scenario: every request POSTs a 1 MiB body, and
-- the app (apps/post_len.py) answers the number of bytes it read. Responses
-- whose body is not "1048576" are counted and reported by done() as
-- "bad_bodies: N", which bench/run.py reads.
wrk.method = "POST"
wrk.body = string.rep("a", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

bad = 0

function response(status, headers, body)
  if body ~= "1048576" then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do
    n = n + (t:get("bad") or 0)
  end
  io.write(string.format("bad_bodies: %d\n", n))
end
