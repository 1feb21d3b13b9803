-- WebSocket servers (http.websocketServer) and clients (http.websocket / websocketAsync) talking
-- to each other inside one script over 127.0.0.1.
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

local TIMEOUT = 10 -- generous bound for anything that should happen at once

-- Pulls events until one named `name` arrives (or fails after `timeout` seconds); returns it packed.
-- The next event `name` (whose first value is `key`, if given: an earlier test's late event for
-- another connection is not this test's).
local function pull(name, timeout, key)
    local timer = os.startTimer(timeout or TIMEOUT)
    while true do
        local ev = table.pack(os.pullEventRaw())
        if ev[1] == name and (key == nil or ev[2] == key) then
            os.cancelTimer(timer)
            return ev
        elseif ev[1] == "timer" and ev[2] == timer then
            error("event " .. name .. " never arrived", 2)
        end
    end
end

-- A fresh server on an OS-chosen port, and the URL to reach it.
local function new_server()
    local server, err = http.websocketServer(0)
    t.ok(server, "websocketServer(0): " .. tostring(err))
    t.eq(type(server.port), "number", "server.port type")
    t.ok(server.port > 0, "server.port > 0")
    return server, "ws://127.0.0.1:" .. server.port .. "/"
end

-- Runs `server_fn(client_handle)` on the next client of `server` alongside `client_fn(url)`;
-- returns when both have returned. The server is closed afterwards.
local function pair(server_fn, client_fn)
    local server, url = new_server()
    local ok, err = pcall(parallel.waitForAll, function()
        local c = server.listen(TIMEOUT)
        t.ok(c, "listen returned a client")
        server_fn(c)
    end, function()
        client_fn(url)
    end)
    server.close()
    if not ok then error(err, 0) end
end

-- Connects to `url`, failing the test if it cannot.
local function connect(url)
    local ws, err = http.websocket(url)
    t.ok(ws, "http.websocket: " .. tostring(err))
    return ws
end

-- Echo -----------------------------------------------------------------------------------------

t.test("text and binary messages echo, NUL bytes and empty messages intact", function()
    local messages = {
        { "hello", false },
        { "a\0b\0\255\1", true },
        { "text\0with NUL", false },
        { "", false },
        { "", true },
        { string.rep("0123456789", 10000), true },
    }
    pair(function(c)
        for i = 1, #messages do
            local msg, bin = c.receive(TIMEOUT)
            t.eq(msg, messages[i][1], "server got message " .. i)
            t.eq(bin, messages[i][2], "server got binary flag " .. i)
            c.send(msg, bin)
        end
    end, function(url)
        local ws = connect(url)
        for i = 1, #messages do
            ws.send(messages[i][1], messages[i][2])
            local msg, bin = ws.receive(TIMEOUT)
            t.eq(msg, messages[i][1], "echo " .. i)
            t.eq(bin, messages[i][2], "echo binary flag " .. i)
        end
        ws.close()
    end)
end)

-- Events ---------------------------------------------------------------------------------------

t.test("server events: argument order, types, and one clientID throughout", function()
    local server, url = new_server()
    local ok, err = pcall(parallel.waitForAll, function()
        local ev = pull("websocket_server_connect")
        t.eq(ev.n, 3, "connect value count")
        t.eq(ev[2], server.port, "connect port")
        t.eq(type(ev[3]), "table", "connect handle type")
        local handle = ev[3]
        local id = handle.clientID
        t.eq(type(id), "userdata", "clientID type")
        t.eq(type(handle.send), "function", "handle.send")
        t.eq(type(handle.receive), "function", "handle.receive")
        t.eq(type(handle.close), "function", "handle.close")

        ev = pull("websocket_server_message")
        t.eq(ev.n, 4, "message value count")
        t.eq(type(ev[2]), "userdata", "message clientID type")
        t.ok(ev[2] == id, "message clientID equals handle.clientID")
        t.eq(ev[3], "hi", "message text")
        t.eq(ev[4], false, "text message binary flag")

        ev = pull("websocket_server_message")
        t.ok(ev[2] == id, "binary message clientID")
        t.eq(ev[3], "\0\1\2", "binary message")
        t.eq(ev[4], true, "binary message binary flag")
        handle.send("got both")

        ev = pull("websocket_server_closed")
        t.eq(ev.n, 4, "closed value count")
        t.eq(type(ev[2]), "userdata", "closed clientID type")
        t.ok(ev[2] == id, "closed clientID equals handle.clientID")
        t.eq(ev[3], "", "closed reason (client closed with an empty reason)")
        t.eq(ev[4], 1000, "closed code")
    end, function()
        local ws = connect(url)
        ws.send("hi")
        ws.send("\0\1\2", true)
        t.eq(ws.receive(TIMEOUT), "got both", "server answered")
        ws.close()
    end)
    server.close()
    if not ok then error(err, 0) end
end)

t.test("two clients get different clientIDs", function()
    local server, url = new_server()
    local ids = {}
    local ok, err = pcall(parallel.waitForAll, function()
        for i = 1, 2 do
            local c = server.listen(TIMEOUT)
            t.ok(c, "client " .. i)
            ids[i] = c.clientID
            c.send("welcome")
        end
    end, function()
        local a = connect(url)
        t.eq(a.receive(TIMEOUT), "welcome", "first welcome")
        local b = connect(url)
        t.eq(b.receive(TIMEOUT), "welcome", "second welcome")
        a.close()
        b.close()
    end)
    server.close()
    if not ok then error(err, 0) end
    t.ok(ids[1] ~= nil and ids[2] ~= nil, "both clientIDs")
    t.ok(ids[1] ~= ids[2], "clientIDs differ")
end)

-- Timeouts -------------------------------------------------------------------------------------

t.test("receive(timeout) returns a single nil after the timeout; the connection stays usable", function()
    -- Each side times out while the other is waiting for it, so nothing is in flight during a
    -- timed receive whichever side's listen/connect returns first: the client times out, then
    -- sends "go"; the server, which was waiting for "go", times out in turn, then answers.
    pair(function(c)
        t.eq(c.receive(TIMEOUT), "go", "the client's go")
        local start = os.epoch("utc")
        local n = select("#", c.receive(0.2))
        local elapsed = os.epoch("utc") - start
        t.eq(n, 1, "value count")
        t.ok(elapsed >= 150, "server receive waited (" .. elapsed .. " ms)")
        c.send("after timeout")
        t.eq(c.receive(TIMEOUT), "still here", "message after the timeout")
    end, function(url)
        local ws = connect(url)
        local start = os.epoch("utc")
        local r = table.pack(ws.receive(0.2))
        local elapsed = os.epoch("utc") - start
        t.eq(r.n, 1, "client value count")
        t.eq(r[1], nil, "client receive timed out")
        t.ok(elapsed >= 150, "client receive waited (" .. elapsed .. " ms)")
        ws.send("go")
        t.eq(ws.receive(TIMEOUT), "after timeout", "message after the timeout")
        ws.send("still here")
        ws.close()
    end)
end)

t.test("listen(timeout) returns a single nil when nobody connects", function()
    local server = new_server()
    local start = os.epoch("utc")
    local r = table.pack(server.listen(0.2))
    local elapsed = os.epoch("utc") - start
    server.close()
    t.eq(r.n, 1, "value count")
    t.eq(r[1], nil, "value")
    t.ok(elapsed >= 150, "listen waited (" .. elapsed .. " ms)")
end)

-- Closing --------------------------------------------------------------------------------------

t.test("client close: server gets websocket_server_closed with the code, receive returns nil", function()
    local got_nil, closed_ev
    pair(function(c)
        c.send("ready") -- no yield between this and both waiters starting
        parallel.waitForAll(function()
            got_nil = table.pack(c.receive(TIMEOUT))
        end, function()
            closed_ev = pull("websocket_server_closed")
        end)
        t.raises("attempt to use a closed file", c.receive)
        t.raises("attempt to use a closed file", c.receive, 1)
        t.raises("attempt to use a closed file", c.send, "x")
        c.close() -- never errors
        c.close()
    end, function(url)
        local ws = connect(url)
        t.eq(ws.receive(TIMEOUT), "ready", "ready")
        ws.close()
        t.raises("attempt to use a closed file", ws.send, "x")
        t.raises("attempt to use a closed file", ws.receive)
        ws.close()
    end)
    t.eq(got_nil.n, 1, "receive value count")
    t.eq(got_nil[1], nil, "receive after remote close")
    t.eq(closed_ev[4], 1000, "close code")
    t.eq(closed_ev[3], "", "close reason")
end)

t.test("server-side handle close: client gets websocket_closed, receive returns nil", function()
    local got_nil, closed_ev, url_seen
    pair(function(c)
        t.eq(c.receive(TIMEOUT), "ready", "ready")
        c.close()
        t.raises("attempt to use a closed file", c.send, "x")
        t.raises("attempt to use a closed file", c.receive)
        -- The server still sees the connection end.
        local ev = pull("websocket_server_closed", nil, c.clientID)
        t.ok(ev[2] == c.clientID, "closed clientID")
    end, function(url)
        url_seen = url
        local ws = connect(url)
        ws.send("ready")
        parallel.waitForAll(function()
            got_nil = table.pack(ws.receive(TIMEOUT))
        end, function()
            closed_ev = pull("websocket_closed", nil, url)
        end)
        t.raises("attempt to use a closed file", ws.send, "x")
        t.raises("attempt to use a closed file", ws.receive)
    end)
    t.eq(got_nil.n, 1, "receive value count")
    t.eq(got_nil[1], nil, "receive after remote close")
    t.eq(closed_ev.n, 4, "websocket_closed value count")
    t.eq(closed_ev[2], url_seen, "websocket_closed url")
    t.eq(closed_ev[4], 1000, "websocket_closed code")
    t.eq(type(closed_ev[3]), "string", "websocket_closed reason type")
end)

t.test("server.close() closes connected clients with 1001", function()
    local server, url = new_server()
    local closed_ev
    local ok, err = pcall(parallel.waitForAll, function()
        local c = server.listen(TIMEOUT)
        t.ok(c, "client")
        t.eq(c.receive(TIMEOUT), "ready", "ready")
        server.close()
        local ev = pull("websocket_server_closed", nil, c.clientID)
        t.ok(ev[2] == c.clientID, "server_closed clientID")
    end, function()
        local ws = connect(url)
        ws.send("ready")
        closed_ev = pull("websocket_closed", nil, url)
        t.eq(ws.receive == nil, false, "handle intact")
        t.raises("attempt to use a closed file", ws.receive)
    end)
    server.close()
    if not ok then error(err, 0) end
    t.eq(closed_ev[2], url, "websocket_closed url")
    t.eq(closed_ev[4], 1001, "websocket_closed code")
end)

t.test("send raises 'Message is too large' above 16 MiB, before the closed check", function()
    local big = string.rep("x", 16 * 1024 * 1024 + 1)
    pair(function(c)
        t.raises("Message is too large", c.send, big)
        t.eq(c.receive(TIMEOUT), "done", "client done")
        c.close()
        t.raises("Message is too large", c.send, big)
    end, function(url)
        local ws = connect(url)
        t.raises("Message is too large", ws.send, big)
        ws.send("done")
        ws.close()
        t.raises("Message is too large", ws.send, big)
    end)
end)

-- Server lifecycle -----------------------------------------------------------------------------

t.test("a second server on the same port: nil, 'Port already in use'", function()
    local server = new_server()
    local again, err = http.websocketServer(server.port)
    server.close()
    t.eq(again, nil, "second server")
    t.eq(err, "Port already in use", "message")
end)

t.test("server.close(): listen raises, close is idempotent, the port reopens", function()
    local server, url = new_server()
    local port = server.port
    server.close()
    t.raises("attempt to use a closed file", server.listen)
    t.raises("attempt to use a closed file", server.listen, 0.1)
    server.close() -- no error
    local again, err = http.websocketServer(port)
    t.ok(again, "reopen: " .. tostring(err))
    t.eq(again.port, port, "same port")
    local ok, e = pcall(parallel.waitForAll, function()
        local c = again.listen(TIMEOUT)
        t.ok(c, "client on the reopened server")
        c.send("reopened")
    end, function()
        local ws = connect(url)
        t.eq(ws.receive(TIMEOUT), "reopened", "message")
        ws.close()
    end)
    again.close()
    if not ok then error(e, 0) end
    -- The old handle still refers to the old, closed server.
    t.raises("attempt to use a closed file", server.listen, 0.1)
end)

-- Client failures ------------------------------------------------------------------------------

-- A port that refused connections a moment ago (a server opened and closed on it).
local function refused_url()
    local server, url = new_server()
    server.close()
    return url
end

t.test("http.websocket to a refused port returns false and a message", function()
    local url = refused_url()
    local n = table.pack(http.websocket(url))
    t.eq(n[1], false, "first value")
    t.eq(type(n[2]), "string", "message type")
    t.ok(#n[2] > 0, "message not empty")
end)

t.test("http.websocketAsync to a refused port queues websocket_failure(url, reason)", function()
    local url = refused_url()
    local ok = http.websocketAsync(url)
    t.eq(ok, true, "websocketAsync accepted the URL")
    local ev = pull("websocket_failure")
    t.eq(ev[2], url, "failure url")
    t.eq(type(ev[3]), "string", "failure reason type")
    t.ok(#ev[3] > 0, "reason not empty")
end)

t.test("websocketAsync success gives websocket_success(url, handle)", function()
    local server, url = new_server()
    local ok, err = pcall(parallel.waitForAll, function()
        local c = server.listen(TIMEOUT)
        t.ok(c, "client")
        c.send("hello async")
    end, function()
        t.eq(http.websocketAsync(url), true, "accepted")
        local ev = pull("websocket_success")
        t.eq(ev[2], url, "success url")
        t.eq(type(ev[3]), "table", "handle")
        local ev2 = pull("websocket_message")
        t.eq(ev2.n, 4, "websocket_message value count")
        t.eq(ev2[2], url, "message url")
        t.eq(ev2[3], "hello async", "message")
        t.eq(ev2[4], false, "binary flag")
        ev[3].close()
    end)
    server.close()
    if not ok then error(err, 0) end
end)

t.test("a non-ws scheme fails: websocket returns false, websocketAsync queues a failure", function()
    local url = "http://127.0.0.1:1/"
    local ok, err = http.websocket(url)
    t.eq(ok, false, "websocket result")
    t.eq(type(err), "string", "message type")
    t.ok(#err > 0, "message not empty")
    local aok = http.websocketAsync(url)
    t.eq(aok, false, "websocketAsync result")
    local ev = pull("websocket_failure")
    t.eq(ev[2], url, "failure url")
    t.eq(type(ev[3]), "string", "failure reason")
end)

t.done()
