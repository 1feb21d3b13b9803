-- The streaming benchmark's server (benches/stream.rs): `ccserve bench/stream.lua PORT MIB`.
--   GET /big    MIB MiB of "x" in 64 KiB parts, each written with res.write(piece) and sent with
--               res.flush() (chunked), then res.close().
--   GET /first  "data: 1\n\n", flushed at once (the first chunk, whose arrival the client times);
--               2 ms later (a timer) "data: 2\n\n" and res.close().
--   else        404.
local port, mib = tonumber(arg[1]), tonumber(arg[2] or 1024)
http.addListener(port)
local piece = string.rep("x", 64 * 1024)
local parts = mib * 16
local waiting = {} -- timer id -> res of a /first response whose second part is due

while true do
    local event, a, b, c = os.pullEvent()
    if event == "http_request" then
        local req, res = b, c
        local url = req.getURL()
        if url == "/big" then
            res.setResponseHeader("Content-Type", "application/octet-stream")
            for _ = 1, parts do
                res.write(piece)
                if not res.flush() then break end -- the client went away
            end
            res.close()
        elseif url == "/first" then
            res.setResponseHeader("Content-Type", "text/event-stream")
            res.write("data: 1\n\n")
            res.flush()
            waiting[os.startTimer(0.002)] = res
        else
            res.setStatusCode(404)
            res.close()
        end
    elseif event == "timer" and waiting[a] then
        local res = waiting[a]
        waiting[a] = nil
        res.write("data: 2\n\n")
        res.close()
    end
end
