-- Routing by method and path with the event API (http.addListener + os.pullEvent), the way
-- CraftOS-PC scripts that serve more than one thing are written.
-- Run it:  ccserve examples/routing.lua [PORT]
--   curl http://127.0.0.1:8080/            -> the list of routes
--   curl http://127.0.0.1:8080/time        -> the time
--   curl -X POST -d 'hi' http://127.0.0.1:8080/notes; curl http://127.0.0.1:8080/notes
--   curl -X DELETE http://127.0.0.1:8080/  -> 405
local port = tonumber(... or 8080)
local notes = {}

local routes = {
    ["GET /"] = function(req, res)
        res.write("Routes: GET /time, GET /notes, POST /notes\n")
    end,
    ["GET /time"] = function(req, res)
        res.write(("Server time (UTC): %d ms since 1970\n"):format(os.epoch("utc")))
    end,
    ["GET /notes"] = function(req, res)
        for i, note in ipairs(notes) do res.writeLine(i .. ": " .. note) end
    end,
    ["POST /notes"] = function(req, res)
        notes[#notes + 1] = req.readAll()
        res.setStatusCode(201)
        res.writeLine("stored note " .. #notes)
    end,
}

-- CraftOS-PC's addListener returns nothing; ccserve's returns the bound port (useful with 0).
port = http.addListener(port) or port
print("Routing on port " .. port .. "; press Ctrl+C to stop")
while true do
    local _, p, req, res = os.pullEvent("http_request")
    if p == port then
        local path = req.getURL():match("^[^?]*")
        local route = routes[req.getMethod() .. " " .. path]
        res.setResponseHeader("Content-Type", "text/plain")
        if route then
            local ok, err = pcall(route, req, res)
            if not ok then
                res.setStatusCode(500)
                res.write("error: " .. tostring(err) .. "\n")
            end
        elseif routes["GET " .. path] or routes["POST " .. path] then
            res.setStatusCode(405)
            res.write("method not allowed\n")
        else
            res.setStatusCode(404)
            res.write("not found: " .. path .. "\n")
        end
        res.close()
    end
end
