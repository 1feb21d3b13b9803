-- Echo a POST body back, with what the client sent about it.
-- Run it:  ccserve examples/echo.lua [PORT]
--   curl -d 'hello' http://127.0.0.1:8080/anything
local port = tonumber(... or 8080)
print("Echoing on port " .. port .. "; press Ctrl+C to stop")
http.listen(port, function(req, res)
    if req.getMethod() ~= "POST" then
        res.setStatusCode(405)
        res.setResponseHeader("Allow", "POST")
        res.write("POST something\n")
        res.close()
        return
    end
    local body = req.readAll()
    local headers = req.getRequestHeaders()
    res.setResponseHeader("Content-Type", headers["Content-Type"] or headers["content-type"] or "application/octet-stream")
    res.setResponseHeader("X-Body-Length", #body)
    res.write(body)
    res.close()
end)
