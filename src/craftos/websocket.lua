-- The Lua half of the WebSocket API: http.websocketServer and its server handle (CraftOS-PC
-- 2.8), http.websocket / http.websocketAsync clients (CC: Tweaked), and connection handles.
-- Returns the handle factories.
local native, support = ...
local wrap, method, expect = support.wrap, support.method, support.expect

local ws_server = wrap(native.websocketServer)
local server_close = wrap(native.ws_server_close)
local server_is_open = wrap(native.ws_server_is_open)
local is_closed = wrap(native.ws_is_closed)
local connect = wrap(native.websocket_connect)
local legacy_server = wrap(native.websocket_legacy_server)

-- Waits for the next event matching `match(event...)`, or the timer, or terminate.
-- Returns the matching event packed, or nil on timeout.
local function wait_for(timeout, match)
    local timer = timeout and os.startTimer(timeout)
    while true do
        local event = table.pack(os.pullEventRaw())
        if event[1] == "terminate" then
            if timer then os.cancelTimer(timer) end
            error("Terminated", 0)
        elseif event[1] == "timer" and event[2] == timer then
            return nil
        elseif match(table.unpack(event, 1, event.n)) then
            if timer then os.cancelTimer(timer) end
            return event
        end
    end
end

--- http.websocketServer(port): a server handle, or nil and a message. ccserve extension:
--- `options` ({tls = true}: WSS).
function http.websocketServer(port, headers, options)
    local ud, bound = ws_server(port, headers, options)
    if not ud then return nil, bound end
    -- ccserve extension: the bound port (useful with port 0).
    local server = { port = bound }
    --- Waits for the next client (or `timeout` seconds) and returns its handle (or nil).
    function server.listen(timeout)
        if type(timeout) == "table" then timeout = nil end -- colon form
        if timeout ~= nil and type(timeout) ~= "number" then
            error(("bad argument #1 (expected number, got %s)"):format(type(timeout)), 0)
        end
        if not server_is_open(ud) then error("attempt to use a closed file", 0) end
        local event = wait_for(timeout, function(name, p)
            return name == "websocket_server_connect" and p == bound
        end)
        return event and event[3] or nil
    end
    --- Closes the server and every client connected to it.
    function server.close() server_close(ud) end
    return server
end

-- Connection handles -----------------------------------------------------------------------

-- A connection handle. `is_mine(event...)` says whether an event belongs to this connection;
-- `closed_event` names the event that ends it.
local function handle(ud, is_mine, closed_event)
    local h = {}
    h.send = method(native.ws_send, ud)
    h.close = method(native.ws_close, ud)
    function h.receive(timeout)
        if type(timeout) == "table" then timeout = nil end -- colon form
        if timeout ~= nil and type(timeout) ~= "number" then
            error(("bad argument #1 (expected number, got %s)"):format(type(timeout)), 0)
        end
        if is_closed(ud) then error("attempt to use a closed file", 0) end
        local event = wait_for(timeout, is_mine)
        if event == nil or event[1] == closed_event then return nil end
        return event[3], event[4]
    end
    return h
end

-- Events keyed by their first parameter (a clientID or a URL).
local function keyed(message_event, closed_event, key)
    return function(name, k)
        return (name == message_event or name == closed_event) and k == key
    end
end

local factories = {}

--- The handle of a client connected to http.websocketServer: events keyed by clientID.
function factories.server_client(ud, client_id)
    local mine = keyed("websocket_server_message", "websocket_server_closed", client_id)
    local h = handle(ud, mine, "websocket_server_closed")
    h.clientID = client_id
    return h
end

--- The handle of a client of an older-API server (http.websocket(port)): events carry the port
--- first and the client value last.
function factories.legacy_client(ud, port, client_id)
    local function mine(name, p, a, b, c)
        if p ~= port then return false end
        if name == "websocket_message" then return c == client_id end
        return name == "websocket_closed" and a == client_id
    end
    return handle(ud, mine, "websocket_closed")
end

--- The handle of an outgoing connection: events keyed by URL.
function factories.client(ud, url)
    return handle(ud, keyed("websocket_message", "websocket_closed", url), "websocket_closed")
end

-- Clients ------------------------------------------------------------------------------------

--- Opens a connection; the result arrives as websocket_success or websocket_failure.
--- With a port number (the older API): starts a server on it (if not already running) whose
--- clients arrive as websocket_success events.
function http.websocketAsync(url, headers)
    if type(url) == "number" then return legacy_server(url) end
    local target, hdrs = url, headers
    if type(url) == "table" then
        expect(1, url.url, "string")
        expect(1, url.headers, "table", "nil")
        target, hdrs = url.url, url.headers
    else
        expect(1, url, "string", "table", "number")
        expect(2, headers, "table", "nil")
    end
    local ok, err = connect(target, hdrs)
    if not ok then os.queueEvent("websocket_failure", target, err) end
    return ok, err
end

--- Opens a connection and waits for it: a handle, or false and a message.
--- With a port number (the older API): starts a server and waits for its first client; returns
--- the client's handle and its unique client value.
function http.websocket(url, headers)
    if type(url) == "number" then
        local ok, err = legacy_server(url)
        if not ok then return false, err end
        local port = err or url -- the bound port (a ccserve extension: port 0 picks one)
        while true do
            local event, p, handle, client_id = os.pullEvent("websocket_success")
            if p == port then return handle, client_id end
        end
    end
    local target, hdrs = url, headers
    if type(url) == "table" then
        expect(1, url.url, "string")
        expect(1, url.headers, "table", "nil")
        target, hdrs = url.url, url.headers
    else
        expect(1, url, "string", "table", "number")
        expect(2, headers, "table", "nil")
    end
    local ok, err = connect(target, hdrs)
    if not ok then return false, err end
    while true do
        local event, u, param = os.pullEvent()
        if event == "websocket_success" and u == target then
            return param
        elseif event == "websocket_failure" and u == target then
            return false, param
        end
    end
end

return factories
