-- A first end-to-end check: a listener and the client in one script.
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

t.test("10/2 prints as in CraftOS-PC (Lua 5.2)", function()
    if _VERSION == "Lua 5.2" then t.eq(tostring(10 / 2), "5") end
end)

t.test("request and response round trip", function()
    t.with_listener(function(port)
        while true do
            local _, p, req, res = os.pullEvent("http_request")
            t.eq(p, port, "port")
            res.setStatusCode(201)
            res.setResponseHeader("X-Echo", req.getMethod() .. " " .. req.getURL())
            res.write(req.readAll())
            res.close()
        end
    end, function(base)
        local h = t.ok(http.post(base .. "/a?b=%20c", "body\0bytes"), "response")
        t.eq(h.getResponseCode(), 201, "code")
        t.eq(h.getResponseHeaders()["X-Echo"], "POST /a?b=%20c", "echo header")
        t.eq(h.readAll(), "body\0bytes", "body")
    end)
end)

t.done()
