-- Server-sent events with lua-http's API: /events sends the time once a second until the client
-- leaves; other paths get a page that shows them. Each stream runs in its own coroutine, so
-- `cqueues.sleep` pauses only that one.
-- Run it:  ccserve examples/luahttp_sse.lua [PORT]
--   curl -N http://127.0.0.1:8000/events
local cqueues = require "cqueues"
local http_server = require "http.server"
local http_headers = require "http.headers"

local PAGE = [[
<!DOCTYPE html>
<html><head><title>ccserve events</title></head>
<body><p id="now">waiting...</p>
<script>
new EventSource("/events").onmessage = function (e) {
    document.getElementById("now").textContent = e.data;
};
</script></body></html>
]]

local function respond(stream, status, content_type, end_stream)
    local headers = http_headers.new()
    headers:append(":status", status)
    headers:append("content-type", content_type)
    return stream:write_headers(headers, end_stream)
end

local server = assert(http_server.listen {
    host = "0.0.0.0",
    port = tonumber(arg[1]) or 8000,
    onstream = function(_, stream)
        local request = assert(stream:get_headers())
        if request:get(":path") ~= "/events" then
            assert(respond(stream, "200", "text/html", false))
            assert(stream:write_chunk(PAGE, true))
            return
        end
        assert(respond(stream, "200", "text/event-stream", false))
        local n = 0
        while true do
            n = n + 1
            local ok = stream:write_chunk(("data: tick %d at %s\n\n"):format(n, os.date("!%H:%M:%S")), false)
            if not ok then return end -- the client went away
            cqueues.sleep(tonumber(arg[2]) or 1)
        end
    end,
})
assert(server:listen())
io.stderr:write(("Listening on port %d; press Ctrl+C to stop\n"):format(select(3, server:localname())))
assert(server:loop())
