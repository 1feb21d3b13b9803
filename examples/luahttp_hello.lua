-- Hello world written against lua-http's API (require "http.server"), as lua-http users write it.
-- Run it:  ccserve examples/luahttp_hello.lua [PORT]      (the same script runs under `lua`
--          with lua-http installed)
--   curl http://127.0.0.1:8000/
local http_server = require "http.server"
local http_headers = require "http.headers"

local server = assert(http_server.listen {
    host = "0.0.0.0",
    port = tonumber(arg[1]) or 8000,
    onstream = function(_, stream)
        local request = assert(stream:get_headers())
        local response = http_headers.new()
        response:append(":status", "200")
        response:append("content-type", "text/plain")
        local head_only = request:get(":method") == "HEAD"
        assert(stream:write_headers(response, head_only))
        if not head_only then
            assert(stream:write_chunk("Hello, world!\n", true))
        end
    end,
    onerror = function(_, context, op, err)
        io.stderr:write(op, " on ", tostring(context), " failed: ", tostring(err), "\n")
    end,
})
assert(server:listen())
io.stderr:write(("Listening on port %d; press Ctrl+C to stop\n"):format(select(3, server:localname())))
assert(server:loop())
