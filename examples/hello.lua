-- Hello world: serve "Hello, world!" on port 8080 (or the port given as the first argument).
-- Run it:  ccserve examples/hello.lua [PORT]
local port = tonumber(... or 8080)
print("Serving on port " .. port .. "; press Ctrl+C to stop")
http.listen(port, function(req, res)
    res.setResponseHeader("Content-Type", "text/plain")
    res.write("Hello, world!\n")
    res.close()
end)
