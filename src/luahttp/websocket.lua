-- http.websocket, server side: upgrading a lua-http stream to a WebSocket and using it
-- (`websocket.rs` beside this file is the native half). After `accept`, the connection runs on
-- the same reader and writer threads as every WebSocket of ccserve (tungstenite underneath:
-- fragments reassembled, pings answered, UTF-8 and frame rules checked, messages limited to
-- `--ws-max-message`); its events reach the waiting coroutine through the scheduler.
local native = ...

local cqueues = require("cqueues")
local cc = require("cqueues.condition")
local ce = require("cqueues.errno")
local http_headers = require("http.headers")
local server_module = require("http.server")

local monotime = cqueues.monotime

local function fail(n, message)
    return nil, message or ce.strerror(n), n
end

local function left(deadline)
    return deadline and math.max(deadline - monotime(), 0)
end

local websocket_methods = { close_timeout = 3 }
local websocket_mt = { __index = websocket_methods, __name = "http.websocket" }

function websocket_mt:__tostring()
    return ("http.websocket{type=%q;readyState=%d}"):format(self.type, self.readyState)
end

local open = {} -- exchange id -> websocket whose connection is live

-- Connection events: "open" (the handle), "message" (data, binary), "closed" (reason, code).
cqueues._on(native.websocket_event, function(id, kind, a, b)
    local ws = open[id]
    if not ws then return end
    if kind == "open" then
        ws.conn = a
    elseif kind == "message" then
        ws.inbox[#ws.inbox + 1] = { a, b and "binary" or "text" }
    elseif kind == "closed" then
        ws.closed = { a, b }
        open[id] = nil
    end
    ws.arrived:signal()
end)

-- Whether `token` may be a subprotocol name (RFC 6455: printable ASCII, no separators).
local function valid_protocol(token)
    return token:match("^[!#$%%&'*+%-.^_`|~%w]+$") ~= nil
end

local function trim(s)
    return (s:gsub("^[ \t]+", ""):gsub("[ \t]+$", ""))
end

-- Whether a comma-separated header lists `token` (case-insensitively).
local function lists(value, token)
    for item in (value or ""):gmatch("[^,]+") do
        if trim(item):lower() == token then return true end
    end
    return false
end

local http_websocket = {}

-- Checks that `headers` (of `stream`) ask for a WebSocket; returns an unconnected websocket, or
-- nil, message, errno. Sends nothing: a refused request still needs a response from the script.
-- The older argument order `(headers, stream)` is accepted too.
function http_websocket.new_from_stream(stream, headers)
    if getmetatable(stream) == http_headers.mt then stream, headers = headers, stream end
    if getmetatable(stream) ~= server_module._stream_mt then
        error("new_from_stream: a server stream is needed", 2)
    end
    if stream.peer_version ~= 1.1 then
        return fail(ce.EINVAL, "upgrade headers MUST be ignored in HTTP 1.0")
    end
    if headers:get(":method") ~= "GET" then
        return fail(ce.EINVAL, "websocket upgrade needs a GET request")
    end
    local upgrade = headers:get("upgrade")
    if not upgrade or upgrade:lower() ~= "websocket" then
        return fail(ce.EINVAL, "upgrade header not websocket")
    end
    if not lists(headers:get_comma_separated("connection"), "upgrade") then
        return fail(ce.EINVAL, "connection header doesn't contain upgrade")
    end
    local key = headers:get("sec-websocket-key")
    if not key then return fail(ce.EINVAL, "missing sec-websocket-key") end
    if headers:get("sec-websocket-version") ~= "13" then
        return fail(ce.EINVAL, "unsupported sec-websocket-version")
    end
    local protocols
    if headers:has("sec-websocket-protocol") then
        protocols = {}
        for item in headers:get_comma_separated("sec-websocket-protocol"):gmatch("[^,]+") do
            local protocol = trim(item)
            if protocols[protocol] then return fail(ce.EINVAL, "duplicate protocol") end
            if not valid_protocol(protocol) then return fail(ce.EINVAL, "invalid protocol") end
            protocols[protocol] = true
            protocols[#protocols + 1] = protocol
        end
    end
    return setmetatable({
        type = "server",
        readyState = 0,
        stream = stream,
        key = trim(key),
        protocols = protocols,
        inbox = {},
        arrived = cc.new(),
    }, websocket_mt)
end

-- Completes the handshake: sends the `101` (with `options.headers` as a prototype) and takes
-- the connection over. `options.protocols` lists the subprotocols this server speaks, in order
-- of preference; one the client offered is chosen.
function websocket_methods:accept(options, timeout)
    assert(self.type == "server" and self.readyState == 0, "accept: already accepted")
    options = options or {}
    local deadline = timeout and monotime() + timeout
    local response = options.headers and options.headers:clone() or http_headers.new()
    response:upsert(":status", "101")
    response:upsert("upgrade", "websocket")
    response:upsert("connection", "upgrade")
    response:upsert("sec-websocket-accept", native.ws_accept_key(self.key))
    local chosen
    if self.protocols then
        for _, protocol in ipairs(options.protocols or {}) do
            if self.protocols[protocol] then
                chosen = protocol
                break
            end
        end
        if not chosen then return fail(ce.EPROTONOSUPPORT, "no matching protocol") end
        response:upsert("sec-websocket-protocol", chosen)
    end
    local list = {}
    for name, value in response:each() do
        if name:sub(1, 1) ~= ":" then
            list[#list + 1] = name
            list[#list + 1] = value
        end
    end
    local stream = self.stream
    if stream.head_written then return fail(ce.EINVAL, "the response was already started") end
    open[stream.id] = self
    local ok, err = native.websocket(stream.ud, list)
    if ok == false then
        open[stream.id] = nil
        return fail(ce[err] or ce.EPIPE)
    end
    stream.head_written, stream.ended, stream.state = true, true, "closed"
    self.id = stream.id
    while not self.conn and not self.closed do
        if not self.arrived:wait(left(deadline)) then
            return fail(ce.ETIMEDOUT)
        end
    end
    if not self.conn then return fail(ce.EPIPE) end
    self.stream = nil
    self.readyState = 1
    self.protocol = chosen
    return true
end

-- The next message and its type ("text" or "binary"). When the peer closes: nil, its reason,
-- its close code; after that, or on a connection that is not open: nil, message, errno.
function websocket_methods:receive(timeout)
    if self.readyState < 1 then return fail(ce.ENOTCONN) end
    local deadline = timeout and monotime() + timeout
    while true do
        local item = table.remove(self.inbox, 1)
        if item then return item[1], item[2] end
        if self.closed then
            if self.readyState < 3 then
                self.readyState = 3
                local reason, code = self.closed[1], self.closed[2]
                return nil, reason, code or 1005
            end
            return fail(ce.EPIPE)
        end
        if not self.arrived:wait(left(deadline)) then return fail(ce.ETIMEDOUT) end
    end
end

function websocket_methods:each()
    return function(ws) return ws:receive() end, self
end

local OPCODES = { text = 1, binary = 2, close = 8, ping = 9, pong = 10 }

-- Sends `data` as one message: opcode "text" (default), "binary", or a number.
function websocket_methods:send(data, opcode, timeout) -- luacheck: ignore 212
    local op = OPCODES[opcode or "text"] or opcode
    if op == 8 then return self:close(nil, data, timeout) end
    if op ~= 1 and op ~= 2 and op ~= 9 and op ~= 10 then
        error("send: unsupported opcode " .. tostring(opcode), 2)
    end
    if self.readyState ~= 1 or not self.conn then return fail(ce.EPIPE) end
    local ok, err = native.ws_frame(self.conn, op, tostring(data or ""))
    if not ok then return fail(ce[err] or ce.EPIPE) end
    return true
end

-- A frame as lua-http's low-level API describes it (`{opcode =, data =}`; one whole frame).
function websocket_methods:send_frame(frame, timeout)
    return self:send(frame.data or "", frame.opcode, timeout)
end

function websocket_methods:send_ping(data, timeout)
    return self:send(data or "", 9, timeout)
end

function websocket_methods:send_pong(data, timeout)
    return self:send(data or "", 10, timeout)
end

-- Sends a Close frame (`code`, default 1000) and waits, at most `timeout` (or `close_timeout`),
-- for the connection to end.
function websocket_methods:close(code, reason, timeout)
    if self.readyState == 0 and self.stream then
        -- Never accepted: nothing to close but the stream.
        self.readyState = 3
        return true
    end
    if self.conn and self.readyState < 2 then
        native.ws_close(self.conn, code or 1000, reason)
        self.readyState = 2
    end
    local deadline = monotime() + (timeout or self.close_timeout)
    while not self.closed do
        if not self.arrived:wait(left(deadline)) then break end
    end
    self.readyState = 3
    return true
end

function http_websocket.new_from_uri()
    error("http.websocket.new_from_uri (a WebSocket client) is not supported by ccserve's " ..
        "lua-http API yet; CraftOS's http.websocket(url) is available", 2)
end

http_websocket.methods = websocket_methods
http_websocket.mt = websocket_mt

return http_websocket
