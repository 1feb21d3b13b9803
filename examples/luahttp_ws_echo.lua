-- WebSocket echo with lua-http's API: GET / upgrades to a WebSocket and every message comes back
-- as it was sent (text or binary); other requests get 426.
-- Run it:  ccserve examples/luahttp_ws_echo.lua [PORT]     (then connect to ws://127.0.0.1:PORT/)
local http_server = require "http.server"
local http_headers = require "http.headers"
local http_websocket = require "http.websocket"

local server = assert(http_server.listen {
    host = "0.0.0.0",
    port = tonumber(arg[1]) or 8000,
    onstream = function(_, stream)
        local request = assert(stream:get_headers())
        local ws = http_websocket.new_from_stream(stream, request)
        if not ws then
            local response = http_headers.new()
            response:append(":status", "426")
            response:append("upgrade", "websocket")
            assert(stream:write_headers(response, true))
            return
        end
        assert(ws:accept())
        for data, kind in ws:each() do
            if not ws:send(data, kind) then break end
        end
        ws:close()
    end,
})
assert(server:listen())
io.stderr:write(("Listening on port %d; press Ctrl+C to stop\n"):format(select(3, server:localname())))
assert(server:loop())
