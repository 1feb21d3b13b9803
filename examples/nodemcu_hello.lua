-- Hello world for NodeMCU's httpserver: serve "Hello, world!" on port 8080 (or the port given
-- as the first argument). The same file runs on a NodeMCU board (which passes no argument).
-- Run it:  ccserve --nodemcu examples/nodemcu_hello.lua [PORT]
local port = tonumber(... or 8080)
require("httpserver").createServer(port, function(req, res)
    res:send_header("Content-Type", "text/plain")
    res:finish("Hello, world!\n")
end)
print("Serving on port " .. port .. "; press Ctrl+C to stop")
