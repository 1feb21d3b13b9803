-- http.server: lua-http's server and stream objects over ccserve's streaming engine
-- (`server.rs` beside this file is the native half). Every stream runs `onstream(server, stream)`
-- in a coroutine of the server's controller (`cqueues.lua`); a read of a body piece not yet
-- arrived, or a write into a full buffer, suspends only that coroutine.
local native = ...

local cqueues = require("cqueues")
local cc = require("cqueues.condition")
local ce = require("cqueues.errno")
local new_headers = require("http.headers").new

local monotime = cqueues.monotime
local wait_stream = cqueues._wait_stream

-- Result helpers --------------------------------------------------------------------------------

-- lua-http's failure convention: nil, message, errno.
local function fail(name)
    local n = ce[name] or ce.EINVAL
    return nil, ce.strerror(n), n
end

-- The time left before `deadline` (nil: no deadline).
local function left(deadline)
    return deadline and math.max(deadline - monotime(), 0)
end

-- Connections -----------------------------------------------------------------------------------

local connection_methods = {}
local connection_mt = { __index = connection_methods, __name = "http.h1_connection" }

function connection_mt:__tostring()
    return ("http.h1_connection{type=\"server\";version=%s}"):format(self.version)
end

function connection_methods:peername() return table.unpack(self.peer, 1, self.peer.n) end
function connection_methods:localname() return table.unpack(self.localaddr, 1, self.localaddr.n) end
function connection_methods:checktls() return nil end
function connection_methods:onidle() end

-- One connection object per keep-alive connection, shared by its streams.
local connections = setmetatable({}, { __mode = "v" })

-- Streams ---------------------------------------------------------------------------------------

local stream_methods = {}
local stream_mt = { __index = stream_methods, __name = "http.h1_stream" }

function stream_mt:__tostring()
    return ("http.h1_stream{connection=%s;state=%q}"):format(tostring(self.connection), self.state)
end

local function new_stream(server, ud, id)
    local method, target, minor, raw, conn_id, _, p1, p2, p3, l1, l2, l3 = native.info(ud)
    local peer = { p1, p2, p3, n = p1 == 0 and 1 or 3 }
    local localaddr = { l1, l2, l3, n = l1 == 0 and 1 or 3 }
    local conn = connections[conn_id]
    if not conn then
        -- lua-http's connection says 1.1 whatever the request's version (the stream has it).
        conn = setmetatable({ version = 1.1, peer = peer, localaddr = localaddr, type = "server" },
            connection_mt)
        connections[conn_id] = conn
    end
    local headers = new_headers()
    headers:append(":method", method)
    if method ~= "CONNECT" then
        headers:append(":scheme", "http")
        headers:append(":path", target)
    end
    for i = 1, #raw, 2 do
        local name = raw[i]:lower()
        if name == "host" then
            if not headers:has(":authority") then headers:append(":authority", raw[i + 1]) end
        else
            headers:append(name, raw[i + 1])
        end
    end
    return setmetatable({
        server = server,
        connection = conn,
        ud = ud,
        id = id,
        peer_version = minor == 0 and 1.0 or 1.1,
        request_headers = headers,
        headers_read = false,
        body_done = false,
        body_failed = nil,
        unread = nil,
        head_written = false,
        ended = false,
        state = "open",
    }, stream_mt)
end

function stream_methods:checktls() return nil end
function stream_methods:localname() return self.connection:localname() end
function stream_methods:peername() return self.connection:peername() end

-- The request's header block the first time; later, no more blocks (no trailers): nil.
function stream_methods:get_headers(timeout) -- luacheck: ignore 212
    if self.headers_read then return nil end
    self.headers_read = true
    return self.request_headers
end

-- The next piece of the request body; nil at its end; nil, message, errno on failure.
function stream_methods:get_next_chunk(timeout)
    if self.unread then
        local piece = self.unread
        self.unread = nil
        return piece
    end
    if self.body_done then return nil end
    if self.body_failed then return fail(self.body_failed) end
    local deadline = timeout and monotime() + timeout
    while true do
        local got, err = native.read(self.ud, 64 * 1024)
        if type(got) == "string" then return got end
        if got == true then
            self.body_done = true
            if self.state == "open" then
                self.state = "half closed (remote)"
            elseif self.state == "half closed (local)" then
                self.state = "closed"
            end
            return nil
        end
        if got == false then
            self.body_failed = err
            return fail(err)
        end
        if wait_stream(self.id, left(deadline)) == "timeout" then return fail("ETIMEDOUT") end
    end
end

-- Gives `str` back: the next read returns it first.
function stream_methods:unget(str)
    if str == nil or str == "" then return true end
    self.unread = (str or "") .. (self.unread or "")
    return true
end

local function each_chunk_next(self)
    return self:get_next_chunk()
end

function stream_methods:each_chunk()
    return each_chunk_next, self
end

-- Reads body pieces until the end, calling `take(piece)` for each; nil, message, errno on failure.
local function read_all(self, timeout, take)
    local deadline = timeout and monotime() + timeout
    while true do
        local piece, err, n = self:get_next_chunk(left(deadline))
        if piece == nil then
            if err == nil then return true end
            return nil, err, n
        end
        take(piece)
    end
end

function stream_methods:get_body_as_string(timeout)
    local parts = {}
    local ok, err, n = read_all(self, timeout, function(piece) parts[#parts + 1] = piece end)
    if not ok then return nil, err, n end
    return table.concat(parts)
end

-- Up to `n` bytes of the body (fewer at its end; nil when nothing is left).
function stream_methods:get_body_chars(n, timeout)
    local deadline = timeout and monotime() + timeout
    local parts, have = {}, 0
    while have < n do
        local piece, err, code = self:get_next_chunk(left(deadline))
        if piece == nil then
            if err ~= nil then return nil, err, code end
            break
        end
        parts[#parts + 1] = piece
        have = have + #piece
    end
    if #parts == 0 then return nil end
    local all = table.concat(parts)
    if #all > n then
        self:unget(all:sub(n + 1))
        all = all:sub(1, n)
    end
    return all
end

-- The body up to `pattern` (found with string.find; `plain` as there), with the match if
-- `include_pattern`; what follows is kept for the next read. At the end without a match: what
-- was read.
function stream_methods:get_body_until(pattern, plain, include_pattern, timeout)
    local deadline = timeout and monotime() + timeout
    local body
    while true do
        local piece, err, code = self:get_next_chunk(left(deadline))
        if piece == nil then
            if err ~= nil then return nil, err, code end
            return body
        end
        body = body and body .. piece or piece
        local s, e = body:find(pattern, 1, plain)
        if s then
            if e < #body then self:unget(body:sub(e + 1)) end
            if include_pattern then return body:sub(1, e) end
            return body:sub(1, s - 1)
        end
    end
end

-- Writes the whole body to `file` (anything with `write`), piece by piece.
function stream_methods:save_body_to_file(file, timeout)
    local ok, err, n = read_all(self, timeout, function(piece) assert(file:write(piece)) end)
    if not ok then return nil, err, n end
    return true
end

-- The body in a temporary file, positioned at its start.
function stream_methods:get_body_as_file(timeout)
    local file = assert(io.tmpfile())
    local ok, err, n = self:save_body_to_file(file, timeout)
    if not ok then
        file:close()
        return nil, err, n
    end
    assert(file:seek("set"))
    return file
end

-- Waits (suspending this coroutine only) until the connection can take more of the response.
-- true, or nil, message, errno.
local function wait_room(self, deadline)
    while true do
        local room = native.room(self.ud)
        if room == true then return true end
        if room == false then return fail("EPIPE") end
        if wait_stream(self.id, left(deadline)) == "timeout" then return fail("ETIMEDOUT") end
    end
end

-- Turns a push's result into lua-http's convention.
local function pushed(ok, errname)
    if ok == false then return fail(errname) end
    return true
end

-- Sends the response head. `headers` must have `:status`; `end_stream` ends the response with
-- it. A `content-length` fixes the body's length (it must then match); without one the body
-- is chunked (HTTP/1.1) or ends when the connection closes (HTTP/1.0).
function stream_methods:write_headers(headers, end_stream, timeout)
    assert(headers ~= nil, "bad argument #1 to 'write_headers' (headers expected)")
    local status = headers:get(":status")
    if type(status) ~= "string" or not status:match("^%d%d%d$") then
        error("write_headers: ':status' must be a three-digit code", 2)
    end
    if self.head_written then error("write_headers: the headers were already written", 2) end
    local code = tonumber(status)
    local deadline = timeout and monotime() + timeout
    local ok, err, n = wait_room(self, deadline)
    if not ok then return nil, err, n end
    local list, length = {}, nil
    for name, value in headers:each() do
        if name:sub(1, 1) ~= ":" then
            if name == "content-length" then length = tonumber(value) end
            list[#list + 1] = name
            list[#list + 1] = value
        end
    end
    if code == 100 then
        return pushed(native.head(self.ud, 100, list))
    end
    if end_stream and not length then length = 0 end
    self.head_written = true
    local r, e = native.head(self.ud, code, list, length)
    if r == false then return fail(e) end
    if code ~= 101 and (end_stream or (code >= 100 and code < 200)) then
        return self:write_chunk("", true, left(deadline))
    end
    return true
end

function stream_methods:write_continue(timeout)
    local h = new_headers()
    h:append(":status", "100")
    return self:write_headers(h, false, timeout)
end

-- Sends `chunk` (a string) of the body; `end_stream` ends the response after it.
function stream_methods:write_chunk(chunk, end_stream, timeout)
    if not self.head_written then error("write_chunk: the headers have not been written", 2) end
    if self.ended then return fail("EPIPE") end
    local ok, err, n = wait_room(self, timeout and monotime() + timeout)
    if not ok then return nil, err, n end
    local r, e = native.data(self.ud, chunk, end_stream)
    if r == false then return fail(e) end
    if end_stream then
        self.ended = true
        if self.state == "open" then
            self.state = "half closed (local)"
        elseif self.state == "half closed (remote)" then
            self.state = "closed"
        end
    end
    return true
end

function stream_methods:write_body_from_string(str, timeout)
    return self:write_chunk(str, true, timeout)
end

-- Sends a file (or `{file = f, count = n}`: `n` bytes of it) as the rest of the body.
function stream_methods:write_body_from_file(options, timeout)
    local file, count = options, nil
    if type(options) == "table" and options.file then
        file, count = options.file, options.count
    end
    local deadline = timeout and monotime() + timeout
    while count == nil or count > 0 do
        local want = 64 * 1024
        if count then want = math.min(want, count) end
        local piece = file:read(want)
        if piece == nil then
            if count then error("write_body_from_file: the file ended before 'count' bytes", 2) end
            break
        end
        if count then count = count - #piece end
        local ok, err, n = self:write_chunk(piece, false, left(deadline))
        if not ok then return nil, err, n end
    end
    return self:write_chunk("", true, left(deadline))
end

-- Finishes the stream as lua-http does after a handler: `503` if no response was started; a
-- response left unfinished is cut off. The request body left unread is not needed.
function stream_methods:shutdown()
    if self.state ~= "closed" then
        native.shutdown(self.ud)
        self.state = "closed"
    end
    return true
end

-- Servers -------------------------------------------------------------------------------------

local server_methods = { max_concurrent = math.huge }
local server_mt = { __index = server_methods, __name = "http.server" }

function server_mt:__tostring()
    return ("http.server{port=%s;n_connections=%d}"):format(tostring(self.port), self.n_running)
end

local servers = {} -- listener id (its port) -> server

-- New streams arrive as internal events; each goes to its server's accept coroutine.
cqueues._on(native.stream_event, function(ev)
    local server = servers[ev[2]]
    if not server or not server.id then
        native.shutdown(ev[3])
        return
    end
    server.pending[#server.pending + 1] = { ev[3], ev[4] }
    server.arrived:signal()
end)

local function default_onerror(server, context, op, err, errno) -- luacheck: ignore 212
    local msg = op
    if err then msg = msg .. ": " .. tostring(err) end
    error(msg, 2)
end

function server_methods:onerror(...)
    local old = self.onerror_ or default_onerror
    if select("#", ...) > 0 then self.onerror_ = ... end
    return old
end

local function handle_stream(server, ud, id)
    local stream = new_stream(server, ud, id)
    server.n_running = server.n_running + 1
    local ok, err = pcall(server.onstream, server, stream)
    stream:shutdown()
    server.n_running = server.n_running - 1
    if not ok then
        server:onerror()(server, stream, "onstream", err)
    end
end

-- The coroutine that starts a handler for every stream that arrives.
local function accept_loop(server)
    while server.id do
        if server.paused or #server.pending == 0 then
            server.arrived:wait()
        else
            local item = table.remove(server.pending, 1)
            server.cq:wrap(handle_stream, server, item[1], item[2])
        end
    end
    -- Closed: streams still queued are answered 503.
    for _, item in ipairs(server.pending) do native.shutdown(item[1]) end
    server.pending = {}
end

local function check_options(tbl)
    if type(tbl) ~= "table" then error("bad argument #1 (table of options expected)", 3) end
    if type(tbl.onstream) ~= "function" then error("missing 'onstream'", 3) end
    if tbl.onerror ~= nil and type(tbl.onerror) ~= "function" then
        error("'onerror' must be a function", 3)
    end
    if tbl.tls == true or tbl.ctx ~= nil then
        error("TLS is not supported by ccserve yet: use tls = false (plain HTTP)", 3)
    end
    if tbl.version ~= nil and tbl.version ~= 1.0 and tbl.version ~= 1.1 then
        error("http.server: only HTTP/1.0 and HTTP/1.1 are supported by ccserve (version = " ..
            tostring(tbl.version) .. ")", 3)
    end
    if tbl.cq ~= nil and cqueues.type(tbl.cq) ~= "controller" then
        error("optional cq field should be a cqueue controller", 3)
    end
end

local function new_server(tbl, id, family, ip, port)
    local server = setmetatable({
        cq = tbl.cq or cqueues.new(),
        onstream = tbl.onstream,
        onerror_ = tbl.onerror,
        tls = tbl.tls,
        version = tbl.version,
        max_concurrent = tbl.max_concurrent,
        id = id,
        port = port,
        name = { family, ip, port, n = 3 },
        pending = {},
        arrived = cc.new(),
        paused = false,
        n_running = 0,
    }, server_mt)
    servers[id] = server
    server.cq:wrap(accept_loop, server)
    return server
end

local http_server = {}

-- Binds `host`:`port` and returns a server; nil, message, errno if the address cannot be bound.
function http_server.listen(tbl)
    check_options(tbl)
    if tbl.path ~= nil then
        error("http.server: UNIX domain sockets ('path') are not supported by ccserve; " ..
            "use host and port", 2)
    end
    if tbl.host == nil then error("need host or path", 2) end
    local port = tbl.port
    if port == nil then
        if tbl.tls == false then port = 80 else error("need port", 2) end
    end
    port = tonumber(port)
    if not port or port % 1 ~= 0 then error("'port' must be a whole number", 2) end
    local host = tbl.host
    if tbl.family == "AF_INET6" and host == "*" then host = "::" end
    local id, family, ip, bound = native.listen(host, port, {
        reuseport = tbl.reuseport,
        v6only = tbl.v6only,
        max_concurrent = tbl.max_concurrent,
        connection_setup_timeout = tbl.connection_setup_timeout or tbl.client_timeout,
        intra_stream_timeout = tbl.intra_stream_timeout,
    })
    if not id then return nil, family, ip end
    return new_server(tbl, id, family, ip, bound)
end

function http_server.new(tbl)
    check_options(tbl)
    error("http.server.new: servers over an existing cqueues socket are not supported by " ..
        "ccserve; use http.server.listen", 2)
end

-- Already bound by `listen{}`.
function server_methods:listen(timeout) -- luacheck: ignore 212
    if not self.id then return fail("EBADF") end
    return true
end

function server_methods:localname()
    if not self.id then return 0 end
    return table.unpack(self.name, 1, self.name.n)
end

function server_methods:pause()
    self.paused = true
    return true
end

function server_methods:resume()
    self.paused = false
    self.arrived:signal()
    return true
end

-- Stops accepting and frees the port; handlers already running finish.
function server_methods:close()
    if self.id then
        native.close(self.id)
        servers[self.id] = nil
        self.id = nil
        self.arrived:signal()
    end
    return true
end

function server_methods:empty() return self.cq:empty() end
function server_methods:step(timeout) return self.cq:step(timeout) end
function server_methods:loop(timeout) return self.cq:loop(timeout) end
function server_methods:pollfd() return self.cq:pollfd() end
function server_methods:events() return self.cq:events() end
function server_methods:timeout() return self.cq:timeout() end

function server_methods:add_socket()
    error("server:add_socket is not supported by ccserve (it has no cqueues sockets)", 2)
end

function server_methods:add_stream()
    error("server:add_stream is not supported by ccserve", 2)
end

http_server.mt = server_mt
http_server._stream_mt = stream_mt

return http_server
