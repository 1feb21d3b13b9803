-- http.addListener / http.removeListener and the http_request event.
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

local function url(port, path)
    return "http://127.0.0.1:" .. port .. (path or "/")
end

local function free_port()
    local p = http.addListener(0)
    http.removeListener(p)
    return p
end

-- Serves requests on any port by echoing "<port> <method> <url>" until `stop` is set.
local function echo_server(state)
    return function()
        while true do
            local _, p, req, res = os.pullEvent("http_request")
            state.ports = state.ports or {}
            state.ports[#state.ports + 1] = p
            res.write(tostring(p) .. " " .. req.getMethod() .. " " .. req.getURL())
            res.close()
        end
    end
end

-- Runs `client` beside an echo server; returns the state table.
local function with_echo(client)
    local state = {}
    parallel.waitForAny(echo_server(state), client)
    return state
end

-- A request to `port` must fail without any response.
local function assert_refused(port)
    local h, err, h2 = http.get(url(port, "/"))
    t.eq(h, nil, "handle")
    t.eq(type(err), "string", "message type")
    t.ok(#err > 0, "message")
    t.eq(h2, nil, "no response handle")
end

t.test("addListener(0) returns the bound port, and http_request reports it", function()
    local port = http.addListener(0)
    t.eq(type(port), "number", "port type")
    t.ok(port >= 1 and port <= 65535 and port % 1 == 0, "port in range: " .. tostring(port))
    local state = with_echo(function()
        local h = t.ok(http.get(url(port, "/zero?x")), "response")
        t.eq(h.readAll(), port .. " GET /zero?x", "body")
    end)
    t.eq(state.ports[1], port, "event port")
    t.eq(math.type and math.type(state.ports[1]) or "integer", "integer", "event port is an integer")
    http.removeListener(port)
    assert_refused(port)
end)

t.test("addListener on an explicit port returns that port", function()
    local p = free_port()
    t.eq(http.addListener(p), p, "return value")
    with_echo(function()
        local h = t.ok(http.get(url(p, "/explicit")), "response")
        t.eq(h.readAll(), p .. " GET /explicit", "body")
    end)
    http.removeListener(p)
end)

t.test("the http_request event has exactly port, request table and response table", function()
    local port = http.addListener(0)
    local ev
    parallel.waitForAny(function()
        ev = table.pack(os.pullEvent("http_request"))
        ev[4].close()
        os.pullEvent("never_happens")
    end, function()
        t.ok(http.get(url(port, "/")), "response")
    end)
    http.removeListener(port)
    t.eq(ev.n, 4, "values including the name")
    t.eq(ev[1], "http_request", "name")
    t.eq(ev[2], port, "port")
    t.eq(type(ev[3]), "table", "request")
    t.eq(type(ev[4]), "table", "response")
end)

t.test("two listeners at once: each request reports its own port", function()
    local a, b = http.addListener(0), http.addListener(0)
    t.ok(a ~= b, "distinct ports")
    with_echo(function()
        t.eq(t.ok(http.get(url(a, "/a")), "a").readAll(), a .. " GET /a", "body a")
        t.eq(t.ok(http.get(url(b, "/b")), "b").readAll(), b .. " GET /b", "body b")
        t.eq(t.ok(http.get(url(a, "/a2")), "a2").readAll(), a .. " GET /a2", "body a2")
    end)
    http.removeListener(a)
    assert_refused(a)
    -- b is unaffected by removing a.
    with_echo(function()
        t.eq(t.ok(http.get(url(b, "/b2")), "b2").readAll(), b .. " GET /b2", "body b2")
    end)
    http.removeListener(b)
    assert_refused(b)
end)

t.test("addListener and removeListener argument errors use the native format", function()
    t.raises("bad argument #1 (expected number, got no value)", http.addListener)
    t.raises("bad argument #1 (expected number, got nil)", http.addListener, nil)
    t.raises("bad argument #1 (expected number, got string)", http.addListener, "eighty")
    t.raises("bad argument #1 (expected number, got table)", http.addListener, {})
    t.raises("bad argument #1 (expected number, got boolean)", http.addListener, true)
    t.raises("bad argument #1 (expected number, got no value)", http.removeListener)
    t.raises("bad argument #1 (expected number, got string)", http.removeListener, "x")
    t.raises("bad argument #1 (expected number, got function)", http.removeListener, print)
end)

t.test("a numeric string is accepted as a port by addListener and removeListener", function()
    local p = free_port()
    local ret = http.addListener(tostring(p))
    t.eq(ret, p, "returned port")
    local state = with_echo(function()
        local h = t.ok(http.get(url(p, "/str")), "response")
        t.eq(h.readAll(), p .. " GET /str", "body")
    end)
    t.eq(state.ports[1], p, "event port is the number")
    t.eq(type(state.ports[1]), "number", "event port type")
    http.removeListener(tostring(p))
    assert_refused(p)
end)

t.test("an out-of-range port is silently ignored", function()
    t.eq(select("#", http.addListener(70000)), 0, "70000 returns nothing")
    t.eq(select("#", http.addListener(-1)), 0, "-1 returns nothing")
    t.eq(select("#", http.addListener(65536)), 0, "65536 returns nothing")
    t.eq(select("#", http.removeListener(70000)), 0, "remove 70000")
    t.eq(select("#", http.removeListener(-1)), 0, "remove -1")
end)

t.test("removeListener returns nothing", function()
    local p = http.addListener(0)
    t.eq(select("#", http.removeListener(p)), 0, "values")
end)

t.test("adding the same port twice restarts it without error", function()
    local p = http.addListener(0)
    t.eq(http.addListener(p), p, "second add returns the port")
    local state = with_echo(function()
        local h = t.ok(http.get(url(p, "/again")), "response")
        t.eq(h.readAll(), p .. " GET /again", "body")
    end)
    t.eq(#state.ports, 1, "one event for one request")
    http.removeListener(p)
    assert_refused(p)
end)

t.test("removing an unknown port does nothing", function()
    local p = free_port()
    http.removeListener(p)
    http.removeListener(p)
    -- A live listener is not disturbed by removing another port.
    local live = http.addListener(0)
    http.removeListener(p)
    with_echo(function()
        t.ok(http.get(url(live, "/")), "live listener still serves")
    end)
    http.removeListener(live)
end)

t.test("removing a port twice is harmless", function()
    local p = http.addListener(0)
    http.removeListener(p)
    http.removeListener(p)
    assert_refused(p)
end)

t.test("a removed port refuses connections: sync http.get gets nil and a message", function()
    local p = http.addListener(0)
    with_echo(function() t.ok(http.get(url(p, "/")), "served before removal") end)
    http.removeListener(p)
    assert_refused(p)
end)

t.test("a removed port refuses connections: async http.request gets http_failure", function()
    local p = http.addListener(0)
    http.removeListener(p)
    local target = url(p, "/async")
    t.eq(http.request(target), true, "request started")
    local ev
    for _ = 1, 20 do
        ev = table.pack(os.pullEvent())
        if ev[1] == "http_failure" or ev[1] == "http_success" then break end
    end
    t.eq(ev[1], "http_failure", "event")
    t.eq(ev[2], target, "url")
    t.eq(type(ev[3]), "string", "message")
    t.eq(ev[4], nil, "no handle")
end)

t.test("a removed port can be added again at once", function()
    local p = http.addListener(0)
    http.removeListener(p)
    t.eq(http.addListener(p), p, "re-added")
    with_echo(function()
        local h = t.ok(http.get(url(p, "/back")), "response")
        t.eq(h.readAll(), p .. " GET /back", "body")
    end)
    http.removeListener(p)
    assert_refused(p)
end)

t.test("remove and re-add many times in a row", function()
    local p = http.addListener(0)
    for _ = 1, 20 do
        http.removeListener(p)
        t.eq(http.addListener(p), p, "re-added")
    end
    with_echo(function()
        t.ok(http.get(url(p, "/")), "still serves")
    end)
    http.removeListener(p)
end)

t.test("removing a listener answers its unanswered requests 500", function()
    local p = http.addListener(0)
    local late_err
    parallel.waitForAll(function()
        local _, _, _, res = os.pullEvent("http_request")
        res.write("never sent")
        http.removeListener(p)
        local ok, err = pcall(res.write, "late")
        late_err = ok and "no error" or err
    end, function()
        local h, reason, handle = http.get(url(p, "/pending"))
        t.eq(h, nil, "no success handle")
        t.eq(reason, "Internal Server Error", "reason")
        t.ok(handle, "failure handle")
        t.eq(handle.getResponseCode(), 500, "code")
        t.ok(not handle.readAll():find("never sent", 1, true), "buffered body not sent")
    end)
    t.eq(late_err, "attempt to use a closed file", "handle closed after removal")
end)

t.test("a request dropped by a top-level event filter is answered 503 at once", function()
    local p = http.addListener(0)
    local target = url(p, "/filtered")
    http.request(target)
    -- The http_request event is skipped by this filter; its client must get 503 promptly.
    local ev = table.pack(os.pullEvent("http_failure"))
    http.removeListener(p)
    t.eq(ev[2], target, "url")
    t.eq(ev[3], "Service Unavailable", "reason")
    t.eq(ev[4].getResponseCode(), 503, "code")
end)

t.test("a request whose handles are garbage-collected unanswered gets 500", function()
    local p = http.addListener(0)
    local target = url(p, "/gc")
    http.request({ url = target, timeout = 5 })
    do
        local _, port = os.pullEvent("http_request")
        t.eq(port, p, "port")
    end
    collectgarbage()
    collectgarbage()
    local ev
    for _ = 1, 20 do
        ev = table.pack(os.pullEvent())
        if ev[1] == "http_failure" or ev[1] == "http_success" then break end
    end
    http.removeListener(p)
    t.eq(ev[1], "http_failure", "event")
    t.eq(ev[2], target, "url")
    t.eq(ev[3], "Internal Server Error", "reason")
    t.eq(ev[4] and ev[4].getResponseCode(), 500, "code")
end)

t.test("sequential requests each give one http_request event, in order", function()
    local p = http.addListener(0)
    local state = with_echo(function()
        for i = 1, 5 do
            local h = t.ok(http.get(url(p, "/n" .. i)), "response " .. i)
            t.eq(h.readAll(), p .. " GET /n" .. i, "body " .. i)
        end
    end)
    t.eq(#state.ports, 5, "events")
    http.removeListener(p)
end)

t.done()
