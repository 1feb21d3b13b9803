-- The HTTP client (http.request / http.get / http.post / http.checkURL) against a local listener.
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

local exchange = t.exchange

-- A handler that answers by path: /status/NNN sets the status; everything echoes
-- "METHOD URL BODY"; X-Echo-* request headers come back as X-Got-*.
local function echo(req, res)
    local code = tonumber(req.getURL():match("^/status/(%d+)"))
    if code then res.setStatusCode(code) end
    for k, v in pairs(req.getRequestHeaders()) do
        local suffix = k:match("^X%-Echo%-(.+)$")
        if suffix then res.setResponseHeader("X-Got-" .. suffix, v) end
    end
    res.write(req.getMethod() .. " " .. req.getURL() .. " " .. req.readAll())
end

-- Pulls events until an http_success or http_failure for `url` (bounded); returns it packed.
local function await(url)
    for _ = 1, 100 do
        local ev = table.pack(os.pullEvent())
        if (ev[1] == "http_success" or ev[1] == "http_failure") and ev[2] == url then return ev end
    end
    error("no http_success/http_failure for " .. url, 2)
end

local function free_port()
    local p = http.addListener(0)
    http.removeListener(p)
    return p
end

-- http.request (asynchronous) -----------------------------------------------------------------

t.test("http.request returns true and queues http_success(url, handle)", function()
    local ret, ev
    exchange(echo, function(base)
        local u = base .. "/async?q=1"
        ret = table.pack(http.request(u))
        ev = await(u)
        t.eq(ev[2], u, "url as given")
    end)
    t.eq(ret[1], true, "return value")
    t.eq(ev[1], "http_success", "event")
    t.eq(ev.n, 3, "values: name, url, handle")
    t.eq(type(ev[3]), "table", "handle")
    t.eq(ev[3].readAll(), "GET /async?q=1 ", "body")
    t.eq((ev[3].getResponseCode()), 200, "code")
end)

t.test("http.request with a 4xx/5xx response queues http_failure(url, reason, handle)", function()
    local ev404, ev500
    exchange(echo, function(base)
        http.request(base .. "/status/404")
        ev404 = await(base .. "/status/404")
        http.request(base .. "/status/500")
        ev500 = await(base .. "/status/500")
    end)
    t.eq(ev404[1], "http_failure", "404 event")
    t.eq(ev404[3], "Not Found", "404 reason")
    t.eq(ev404.n, 4, "404 values")
    t.eq((ev404[4].getResponseCode()), 404, "404 code")
    t.eq(ev404[4].readAll(), "GET /status/404 ", "404 body")
    t.eq(ev500[1], "http_failure", "500 event")
    t.eq(ev500[3], "Internal Server Error", "500 reason")
    t.eq((ev500[4].getResponseCode()), 500, "500 code")
end)

t.test("http.request to a closed port queues http_failure(url, message)", function()
    local u = "http://127.0.0.1:" .. free_port() .. "/x"
    t.eq(http.request(u), true, "started")
    local ev = await(u)
    t.eq(ev[1], "http_failure", "event")
    t.eq(ev[2], u, "url")
    t.eq(type(ev[3]), "string", "message type")
    t.ok(#ev[3] > 0, "message")
    t.eq(ev[4], nil, "no handle")
end)

t.test("http.request with a bad URL returns false, message and queues http_failure", function()
    local ok, err = http.request("not a url")
    t.eq(ok, false, "ok")
    t.eq(err, "Must specify http or https", "message")
    local ev = await("not a url")
    t.eq(ev[1], "http_failure", "event")
    t.eq(ev[3], "Must specify http or https", "event message")
    ok, err = http.request("ftp://127.0.0.1/")
    t.eq(ok, false, "ftp ok")
    t.eq(err, "Invalid protocol 'ftp'", "ftp message")
    await("ftp://127.0.0.1/")
end)

t.test("http.request with a body and headers sends POST, the body and the headers", function()
    local ev, seen
    exchange(function(req, res)
        seen = req.getRequestHeaders()
        echo(req, res)
    end, function(base)
        local u = base .. "/post"
        http.request(u, "the body", { ["X-Echo-A"] = "alpha", ["X-Plain"] = "p" })
        ev = await(u)
    end)
    t.eq(ev[1], "http_success", "event")
    t.eq(ev[3].readAll(), "POST /post the body", "echo")
    t.eq(ev[3].getResponseHeaders()["X-Got-A"], "alpha", "header round trip")
    t.eq(seen["X-Plain"], "p", "header sent")
    t.eq(seen["Content-Length"], "8", "Content-Length sent")
end)

t.test("http.request with an options table: method, body, headers", function()
    local ev
    exchange(echo, function(base)
        local u = base .. "/opts"
        http.request({ url = u, method = "PUT", body = "put body", headers = { ["X-Echo-M"] = "m" } })
        ev = await(u)
    end)
    t.eq(ev[3].readAll(), "PUT /opts put body", "echo")
    t.eq(ev[3].getResponseHeaders()["X-Got-M"], "m", "header")
end)

t.test("several requests in flight each get their own event and body", function()
    local bodies = {}
    exchange(echo, function(base)
        local urls = {}
        for i = 1, 5 do
            urls[i] = base .. "/many/" .. i
            http.request(urls[i])
        end
        local left = 5
        for _ = 1, 100 do
            local ev, u, h = os.pullEvent()
            if ev == "http_success" then
                bodies[u:match("/many/(%d)$")] = h.readAll()
                left = left - 1
                if left == 0 then break end
            elseif ev == "http_failure" then
                error("failure: " .. tostring(h))
            end
        end
    end)
    for i = 1, 5 do
        t.eq(bodies[tostring(i)], "GET /many/" .. i .. " ", "body " .. i)
    end
end)

-- http.get / http.post (synchronous) ----------------------------------------------------------

t.test("http.get returns a handle with code, reason, headers and body", function()
    local h
    exchange(function(req, res)
        res.setResponseHeader("X-Reply", "hello")
        res.setResponseHeader("Content-Type", "text/plain")
        echo(req, res)
    end, function(base)
        h = http.get(base .. "/sync", { ["X-Echo-Name"] = "value" })
    end)
    t.ok(h, "handle")
    local code, reason = h.getResponseCode()
    t.eq(code, 200, "code")
    t.eq(reason, "OK", "reason")
    local headers = h.getResponseHeaders()
    t.eq(headers["X-Reply"], "hello", "X-Reply")
    t.eq(headers["Content-Type"], "text/plain", "Content-Type")
    t.eq(headers["X-Got-Name"], "value", "request header echoed")
    t.eq(h.readAll(), "GET /sync ", "body")
end)

t.test("http.get of a 404 returns nil, \"Not Found\", handle", function()
    local r
    exchange(echo, function(base)
        r = table.pack(http.get(base .. "/status/404"))
    end)
    t.eq(r.n, 3, "values")
    t.eq(r[1], nil, "first")
    t.eq(r[2], "Not Found", "reason")
    t.eq((r[3].getResponseCode()), 404, "code")
    t.eq(r[3].readAll(), "GET /status/404 ", "body")
end)

t.test("http.get of a refused connection returns nil and a message", function()
    local r = table.pack(http.get("http://127.0.0.1:" .. free_port() .. "/"))
    t.eq(r[1], nil, "first")
    t.eq(type(r[2]), "string", "message")
    t.ok(#r[2] > 0, "non-empty message")
    t.eq(r[3], nil, "no handle")
end)

t.test("http.get of a bad URL returns nil and the checkURL message", function()
    local h, err = http.get("ftp://example.com/")
    t.eq(h, nil, "handle")
    t.eq(err, "Invalid protocol 'ftp'", "message")
end)

t.test("http.post sends the body with POST", function()
    local h, ct
    exchange(function(req, res)
        ct = req.getRequestHeaders()["Content-Type"]
        echo(req, res)
    end, function(base)
        h = http.post(base .. "/p", "a=1&b=2", { ["Content-Type"] = "application/x-www-form-urlencoded" })
    end)
    t.ok(h, "handle")
    t.eq(h.readAll(), "POST /p a=1&b=2", "echo")
    t.eq(ct, "application/x-www-form-urlencoded", "Content-Type sent")
end)

t.test("http.post with an empty body still sends POST", function()
    local h
    exchange(echo, function(base) h = http.post(base .. "/e", "") end)
    t.eq(h.readAll(), "POST /e ", "echo")
end)

t.test("http.get with an options table and a custom method", function()
    local h
    exchange(echo, function(base) h = http.get({ url = base .. "/d", method = "DELETE" }) end)
    t.eq(h.readAll(), "DELETE /d ", "echo")
end)

t.test("redirects are followed unless redirect = false", function()
    local followed, kept
    exchange(function(req, res)
        if req.getURL() == "/old" then
            res.setStatusCode(302)
            res.setResponseHeader("Location", "/new")
            res.write("moved")
        else
            echo(req, res)
        end
    end, function(base)
        followed = http.get(base .. "/old")
        kept = http.get({ url = base .. "/old", redirect = false })
    end)
    t.ok(followed, "followed handle")
    t.eq(followed.readAll(), "GET /new ", "followed body")
    t.ok(kept, "unfollowed handle")
    t.eq((kept.getResponseCode()), 302, "unfollowed code")
    t.eq(kept.getResponseHeaders()["Location"], "/new", "Location")
    t.eq(kept.readAll(), "moved", "unfollowed body")
end)

t.test("binary bodies survive a round trip", function()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local body = table.concat(bytes)
    local h
    exchange(function(req, res) res.write(req.readAll()) end, function(base)
        h = http.post(base .. "/bin", body, nil, true)
    end)
    t.ok(h.readAll() == body, "bytes intact")
end)

-- Client response handle ------------------------------------------------------------------------

t.test("client handle reads: read, read(n), readLine, readLine(true), readAll, nil at the end", function()
    local h
    exchange(function(_, res) res.write("l1\r\nl2\nabcdef") end, function(base) h = http.get(base .. "/") end)
    t.eq(h.readLine(), "l1\r", "readLine keeps \\r")
    t.eq(h.readLine(true), "l2\n", "readLine(true)")
    t.eq(h.read(), "a", "read()")
    t.eq(h.read(2), "bc", "read(2)")
    t.eq(h.readAll(), "def", "readAll")
    t.eq(h.read(), nil, "read at the end")
    t.eq(h.readLine(), nil, "readLine at the end")
    t.eq(h.readAll(), "", "readAll at the end")
end)

t.test("client handle after close raises 'attempt to use a closed file'", function()
    local h
    exchange(function(_, res) res.write("x") end, function(base) h = http.get(base .. "/") end)
    t.eq(select("#", h.close()), 0, "close returns nothing")
    t.raises("attempt to use a closed file", h.readAll)
    t.raises("attempt to use a closed file", h.read)
    t.raises("attempt to use a closed file", h.readLine)
    t.raises("attempt to use a closed file", h.getResponseCode)
    t.raises("attempt to use a closed file", h.getResponseHeaders)
    t.raises("attempt to use a closed file", h.close)
end)

t.test("client handle supports the colon form", function()
    local h
    exchange(function(_, res) res.setStatusCode(201); res.write("xy") end, function(base)
        h = http.get(base .. "/")
    end)
    t.eq((h:getResponseCode()), 201, "code")
    t.eq(h:read(1), "x", "read")
    t.eq(h:readAll(), "y", "readAll")
    h:close()
end)

-- http.checkURL ----------------------------------------------------------------------------------

t.test("http.checkURL accepts http URLs", function()
    t.eq(http.checkURL("http://127.0.0.1/"), true, "loopback")
    t.eq(http.checkURL("http://example.com:8080/a?b=c"), true, "host, port, query")
    t.eq(http.checkURL("HTTP://EXAMPLE.COM"), true, "upper-case scheme")
end)

t.test("http.checkURL rejects with CC's messages", function()
    local function check(u, expected)
        local ok, err = http.checkURL(u)
        t.eq(ok, false, u .. " ok")
        t.eq(err, expected, u .. " message")
    end
    check("example.com", "Must specify http or https")
    check("", "Must specify http or https")
    check("ftp://example.com/", "Invalid protocol 'ftp'")
    check("ws://example.com/", "Invalid protocol 'ws'")
    check("http://", "URL malformed")
    check("http://:80/", "URL malformed")
    check("http://host:notaport/", "URL malformed")
end)

t.test("https URLs are accepted, or refused by a build without TLS", function()
    local ok, err = http.checkURL("https://example.com/")
    if ok then
        t.eq(err, nil, "no message")
    else
        t.eq(err, "HTTPS is not in this build of ccserve (built without TLS)", "message")
    end
end)

-- Argument errors ----------------------------------------------------------------------------

t.test("client functions raise cc.expect argument errors (no name under pcall)", function()
    t.raises("bad argument #1 (string expected, got nil)", http.get)
    t.raises("bad argument #1 (string expected, got number)", http.get, 5)
    t.raises("bad argument #2 (table expected, got string)", http.get, "http://127.0.0.1/", "h")
    t.raises("bad argument #3 (boolean expected, got string)", http.get, "http://127.0.0.1/", nil, "b")
    t.raises("bad argument #1 (string expected, got nil)", http.post)
    t.raises("bad argument #2 (string expected, got nil)", http.post, "http://127.0.0.1/")
    t.raises("bad argument #1 (string expected, got boolean)", http.request, true)
    t.raises("bad argument #2 (string expected, got number)", http.request, "http://127.0.0.1/", 5)
    t.raises("bad argument #3 (table expected, got string)", http.request, "http://127.0.0.1/", nil, "x")
end)

t.test("http.checkURL raises the native argument error", function()
    t.raises("bad argument #1 (expected string, got no value)", http.checkURL)
    t.raises("bad argument #1 (expected string, got table)", http.checkURL, {})
end)

t.done()
