-- The older WebSocket server API (seed 000): http.websocket(port) / http.websocketAsync(port),
-- websocket_success / websocket_message / websocket_closed with the client value last, and
-- websocket_server_closed(port) once the last client has left.
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

-- A port nobody listens on: bind one with the newer API, note it, close it.
local function free_port()
    local server = assert(http.websocketServer(0))
    local port = server.port
    server.close()
    return port
end

t.test("http.websocket(port) waits for the first client and returns its handle and client value", function()
    local port = free_port()
    local handle, id, events = nil, nil, {}
    parallel.waitForAll(function()
        handle, id = http.websocket(port)
        local msg, binary = handle.receive(5)
        events[#events + 1] = { "received", msg, binary }
        handle.send("echo:" .. msg)
        -- Collect old-style events until the server reports it stopped.
        while true do
            local ev = table.pack(os.pullEvent())
            -- Only this server's events (the Lua client's own websocket_closed carries its URL).
            if (ev[1] == "websocket_closed" or ev[1] == "websocket_server_closed") and ev[2] == port then
                events[#events + 1] = ev
            end
            if ev[1] == "websocket_server_closed" then break end
        end
    end, function()
        local ws = assert(http.websocket("ws://127.0.0.1:" .. port .. "/"))
        ws.send("hi")
        t.eq(ws.receive(5), "echo:hi", "echo")
        ws.close()
    end)
    t.eq(type(handle), "table", "handle")
    t.eq(type(id), "userdata", "client value")
    t.eq(handle.clientID, nil, "no clientID field in the older API")
    t.eq(events[1][2], "hi", "message")
    t.eq(events[1][3], false, "binary flag")
    t.eq(events[2][1], "websocket_closed", "closed event")
    t.eq(events[2][2], port, "closed: port first")
    t.eq(events[2][3], id, "closed: client value last")
    t.eq(events[2].n, 3, "closed: two parameters")
    t.eq(events[3][1], "websocket_server_closed", "server stopped")
    t.eq(events[3][2], port, "server_closed: the port")
    t.eq(events[3].n, 2, "server_closed: one parameter")
    -- The server stopped listening: connecting is refused.
    local ok, err = http.websocket("ws://127.0.0.1:" .. port .. "/")
    t.eq(ok, false, "refused after the server stopped")
    t.ok(type(err) == "string", "message")
end)

t.test("websocketAsync(port): websocket_success and websocket_message carry the client value last", function()
    local port = free_port()
    t.eq(http.websocketAsync(port), true, "started")
    t.eq(http.websocketAsync(port), true, "already running: true again")
    local success, message
    parallel.waitForAll(function()
        -- The client in the other coroutine gets a websocket_success of its own (its URL first);
        -- which of the two is queued first depends on thread timing, so wait for the server's.
        repeat
            success = table.pack(os.pullEvent("websocket_success"))
        until success[2] == port
        message = table.pack(os.pullEvent("websocket_message"))
        success[3].close()
        os.pullEvent("websocket_server_closed")
    end, function()
        local ws = assert(http.websocket("ws://127.0.0.1:" .. port .. "/"))
        ws.send("\0bin", true)
        t.eq(ws.receive(5), nil, "closed by the server")
    end)
    t.eq(success[2], port, "success: port")
    t.eq(type(success[3]), "table", "success: handle")
    t.eq(type(success[4]), "userdata", "success: client value")
    t.eq(message[2], port, "message: port")
    t.eq(message[3], "\0bin", "message: data")
    t.eq(message[4], true, "message: binary")
    t.eq(message[5], success[4], "message: client value last, equal to success's")
end)

t.test("older-API servers never emit newer-API events, and vice versa", function()
    local port = free_port()
    local seen = {}
    http.websocketAsync(port)
    parallel.waitForAny(function()
        while true do
            local ev = os.pullEvent()
            seen[ev] = true
            if ev == "websocket_server_closed" then return end
        end
    end, function()
        local ws = assert(http.websocket("ws://127.0.0.1:" .. port .. "/"))
        ws.send("x")
        ws.close()
        sleep(10) -- bounded: the other side returns first
    end)
    t.eq(seen.websocket_server_connect, nil, "no websocket_server_connect")
    t.eq(seen.websocket_server_message, nil, "no websocket_server_message")
    t.ok(seen.websocket_success, "websocket_success seen")
end)

t.test("port out of range raises", function()
    t.raises("bad argument #1 (port out of range)", http.websocketAsync, 70000)
end)

t.done()
