-- http.server: lua-http's server and stream objects over ccserve's streaming engine
-- (`server.rs` beside this file is the native half). Every stream runs `onstream(server, stream)`
-- in a coroutine of the server's controller (`cqueues.lua`); a read of a body piece not yet
-- arrived, or a write into a full buffer, suspends only that coroutine.
local raw_native, support = ...

-- The natives, raising their errors (a native returns the error sentinel and a message). The
-- ones on every request's path are called raw, checking for the sentinel in place (`ERR`).
local native = {}
for name, f in pairs(raw_native) do
    native[name] = type(f) == "function" and support.wrap(f) or f
end
local ERR, header_fault = support.ERR, support.header_fault
local respond, push_data = raw_native.respond, raw_native.data

local cqueues = require("cqueues")
local cc = require("cqueues.condition")
local ce = require("cqueues.errno")
local http_headers = require("http.headers")
local new_headers, headers_mt = http_headers.new, http_headers.mt

local monotime = cqueues.monotime
local wait_stream = cqueues._wait_stream
local spawn = cqueues._spawn

-- Result helpers --------------------------------------------------------------------------------

-- lua-http's failure convention: nil, message, errno. A response the engine has already
-- finished (the server closed, the response timeout) is a broken pipe to the script, as a
-- connection gone is.
local function fail(name)
    if name == "ESTALE" then name = "EPIPE" end
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
-- On a TLS connection lua-http's `checktls` returns luaossl's SSL object. ccserve's TLS is
-- rustls, so a TLS connection answers a stand-in: true in a test, so `if stream:checktls()`
-- tells HTTPS from HTTP as it does in lua-http, with every method raising an error that says so.
local tls_standin = setmetatable({}, {
    __name = "openssl.ssl",
    __index = function(_, key)
        error("ccserve: checktls() only tells that the connection is TLS; luaossl's SSL object and "
            .. "its methods ('" .. tostring(key) .. "') are not available (ccserve's TLS is rustls)", 2)
    end,
    __tostring = function() return "openssl.ssl (ccserve stand-in)" end,
})

function connection_methods:checktls() return self._tls and tls_standin or nil end
function connection_methods:onidle() end

-- One connection object per keep-alive connection, shared by its streams: kept while the
-- connection is open (the engine says when it closes) or a stream of it is still running.
local connections = {} -- connection id -> object

cqueues._on(native.connection_closed, function(id)
    local conn = connections[id]
    if not conn then return end
    conn._closed = true
    if conn._streams == 0 then connections[id] = nil end
end)

-- Streams ---------------------------------------------------------------------------------------

local stream_methods = {}
local stream_mt = { __index = stream_methods, __name = "http.h1_stream" }

function stream_mt:__tostring()
    return ("http.h1_stream{connection=%s;state=%q}"):format(tostring(self.connection), self.state)
end

-- Heads written without their body wait here until the first body bytes, so that a small
-- response leaves in one piece; any that are still waiting when a coroutine yields go out then
-- (the scheduler calls `flush_heads`), so a client never waits for a head the script wrote.
local deferred, n_deferred = {}, 0 -- streams whose head may still be waiting

-- A waiting head is kept in the stream's fields: its status `head_code` (nil: none), its header
-- list `head_list` and its length `head_length`.
local function flush_head(stream)
    local code = stream.head_code
    if not code then return end
    stream.head_code = nil
    local r = native.head(stream.ud, code, stream.head_list, stream.head_length)
    if r == nil then stream.full = true end
end

cqueues._after_yield(function()
    if n_deferred == 0 then return end
    for i = 1, n_deferred do
        flush_head(deferred[i])
        deferred[i] = nil
    end
    n_deferred = 0
end)

-- A stream for the request `ud` (exchange `id`) with the event's values: the request's fields
-- (laid out as `http.headers` keeps them), its version, its connection, whether it has a body.
local function new_stream(server, ud, id, fields, minor, conn_id, has_body)
    local conn = connections[conn_id]
    if not conn then
        -- lua-http's connection says 1.1 whatever the request's version (the stream has it),
        -- unless the server is pinned to 1.0.
        local p1, p2, p3, l1, l2, l3, tls = native.names(ud)
        conn = setmetatable({
            version = server.version == 1.0 and 1.0 or 1.1,
            peer = { p1, p2, p3, n = p1 == 0 and 1 or 3 },
            localaddr = { l1, l2, l3, n = l1 == 0 and 1 or 3 },
            type = "server",
            _tls = tls,
            _id = conn_id,
            _streams = 0,
            _fresh = true,
        }, connection_mt)
        connections[conn_id] = conn
    end
    conn._streams = conn._streams + 1
    -- The request line as pseudo-headers, then the fields in order, names in lower case, `Host`
    -- as `:authority`.
    setmetatable(fields, headers_mt)
    return setmetatable({
        server = server,
        connection = conn,
        ud = ud,
        id = id,
        peer_version = minor == 0 and 1.0 or 1.1,
        request_headers = fields,
        headers_read = false,
        -- A request without a body has all of it already.
        body_done = not has_body,
        head_written = false,
        ended = false,
        full = false,
        state = has_body and "open" or "half closed (remote)",
    }, stream_mt)
end

-- The stream's handler has finished; its connection object goes once the connection has closed.
local function stream_done(stream)
    local conn = stream.connection
    conn._streams = conn._streams - 1
    if conn._closed and conn._streams == 0 then connections[conn._id] = nil end
end

function stream_methods:checktls() return self.connection:checktls() end
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
    -- Shut down (by the script, or by `server:close()`): the engine no longer serves its body.
    if self.state == "closed" then return fail("EPIPE") end
    local deadline = timeout and monotime() + timeout
    -- A head written before is out before the body is asked for (no `100 Continue` after it).
    flush_head(self)
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
            self:finish_response()
            return nil
        end
        if got == false then
            self.body_failed = err
            self:finish_response()
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
    if not self.full then return true end
    flush_head(self)
    while true do
        local room = native.room(self.ud)
        if room == true then
            self.full = false
            return true
        end
        if room == false then return fail("EPIPE") end
        if wait_stream(self.id, left(deadline)) == "timeout" then return fail("ETIMEDOUT") end
    end
end

-- Turns a push's result into lua-http's convention (nil: queued, the buffer is now full).
local function pushed(self, ok, errname)
    if ok == false then return fail(errname) end
    if ok == nil then self.full = true end
    return true
end

-- `:status` values already checked, with their codes (there are at most 900).
local status_codes = {}

-- Sends the response head. `headers` must have `:status`; `end_stream` ends the response with
-- it. A `content-length` fixes the body's length (it must then match); without one the body
-- is chunked (HTTP/1.1) or ends when the connection closes (HTTP/1.0).
function stream_methods:write_headers(headers, end_stream, timeout)
    assert(headers ~= nil, "bad argument #1 to 'write_headers' (headers expected)")
    local fields = getmetatable(headers) == headers_mt and headers
    -- `:status` is nearly always the first field of one of ours.
    local status
    if fields and fields[1] == ":status" then
        status = fields[2]
    else
        status = headers:get(":status")
    end
    local code = status_codes[status]
    if not code then
        if type(status) ~= "string" or not status:match("^%d%d%d$") then
            error("write_headers: ':status' must be a three-digit code", 2)
        end
        code = tonumber(status)
        status_codes[status] = code
    end
    if self.ended or self.state == "closed" or self.state == "half closed (local)" then
        return fail("EPIPE")
    end
    if self.head_written then error("write_headers: the headers were already written", 2) end
    if code > 101 and code < 200 then
        error("write_headers: ccserve sends no interim responses but 100 and 101", 2)
    end
    local deadline = timeout and monotime() + timeout
    local ok, err, n = wait_room(self, deadline)
    if not ok then return nil, err, n end
    local length, list = nil, nil
    for i = 1, fields and fields._count or math.huge do
        local name, value
        if fields then
            name, value = fields[3 * i - 2], fields[3 * i - 1]
        else
            -- Not one of ours: go through its methods.
            name, value = headers:geti(i)
            if name == nil then break end
        end
        if name:byte(1) ~= 58 then -- not a pseudo-header (':')
            local fault = header_fault(name, value)
            if fault == "name" then
                error(("write_headers: invalid header name %q"):format(name), 2)
            elseif fault then
                error(("write_headers: invalid value for header %q: it contains CR, LF or NUL")
                    :format(name), 2)
            end
            if name == "content-length" then length = tonumber(value) end
            -- The fields cross into the native half as one string, NUL between names and
            -- values (a handful of fields: joined as they come).
            if list then
                list = list .. "\0" .. name .. "\0" .. value
            else
                list = name .. "\0" .. value
            end
        end
    end
    list = list or ""
    if code == 100 then
        return pushed(self, native.head(self.ud, 100, list))
    end
    self.head_written = true
    if code == 101 then
        return pushed(self, native.head(self.ud, 101, list, length))
    end
    if end_stream then
        -- Ended with the head: `content-length: 0`, as lua-http sends (not for HEAD, whose
        -- length would be the GET's).
        if not length and self.request_headers:get(":method") ~= "HEAD" then length = 0 end
        local hold = not self.body_done and not self.body_failed
        self.ended, self.end_held = true, hold
        self.state = self.state == "open" and "half closed (local)" or "closed"
        local r, e = respond(self.ud, code, list, length, nil, not hold)
        if r == ERR then error(e, 2) end
        return pushed(self, r, e)
    end
    self.head_code, self.head_list, self.head_length = code, list, length
    n_deferred = n_deferred + 1
    deferred[n_deferred] = self
    return true
end

function stream_methods:write_continue(timeout)
    local h = new_headers()
    h:append(":status", "100")
    return self:write_headers(h, false, timeout)
end

-- Ends a response whose end was held back (see `write_chunk`).
function stream_methods:finish_response()
    if self.end_held then
        self.end_held = false
        native.data(self.ud, "", true)
    end
end

-- Sends `chunk` (a string) of the body; `end_stream` ends the response after it. The end of a
-- response sent while the request body is still unread is held back until the handler reads
-- that body or returns: the engine serves a request's body only until its response is complete,
-- and lua-http lets a handler answer first and read after. (All the response's bytes go out at
-- once; only a chunked response's last chunk waits.)
function stream_methods:write_chunk(chunk, end_stream, timeout)
    if self.ended or self.state == "closed" or self.state == "half closed (local)" then
        return fail("EPIPE")
    end
    if not self.head_written then error("write_chunk: the headers have not been written", 2) end
    if type(chunk) ~= "string" then
        if type(chunk) ~= "number" then
            error("bad argument #1 to 'write_chunk' (string expected, got " .. type(chunk) .. ")", 2)
        end
        chunk = tostring(chunk)
    end
    local ok, err, n = wait_room(self, timeout and monotime() + timeout)
    if not ok then return nil, err, n end
    local hold = end_stream and not self.body_done and not self.body_failed
    local r, e
    local code = self.head_code
    if code then
        self.head_code = nil
        r, e = respond(self.ud, code, self.head_list, self.head_length, chunk,
            end_stream and not hold)
    else
        r, e = push_data(self.ud, chunk, end_stream and not hold)
    end
    if r == ERR then error(e, 2) end
    if r == false then return fail(e) end
    if r == nil then self.full = true end
    if end_stream then
        self.ended = true
        self.end_held = hold
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
    if self.head_code then flush_head(self) end
    if self.end_held then self:finish_response() end
    if self.state ~= "closed" then
        -- A complete response needs nothing more; otherwise `503`, or the response is cut.
        if not self.ended then native.shutdown(self.ud) end
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

local servers = {} -- listener id -> server
local by_port = {} -- TCP port -> the server listening on it (one per port in a script)


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

-- Frees the server's port (see `server:close`). The responses other handlers are still writing
-- are cut first: the engine would otherwise wait for them while this thread cannot go on
-- producing them.
local function close_listener(server)
    for stream in pairs(server.running) do stream:shutdown() end
    native.close(server.listener)
end

local function handle_stream(server, stream)
    server.n_running = server.n_running + 1
    server.running[stream] = coroutine.running()
    local ok, err = pcall(server.onstream, server, stream)
    stream:shutdown()
    stream_done(stream)
    server.running[stream] = nil
    server.n_running = server.n_running - 1
    if server.close_after == stream then
        server.close_after = nil
        close_listener(server)
    end
    if not ok then
        server:onerror()(server, stream, "onstream", err)
    end
end

-- The next stream to start: the first queued one, or while paused the first one on a
-- connection already served (lua-http stops accepting connections; open ones go on).
local function next_pending(server)
    local pending = server.pending
    for i = 1, #pending do
        if not server.paused or not pending[i].connection._fresh then
            return table.remove(pending, i)
        end
    end
    return nil
end

-- The coroutine that starts a handler for every stream that arrives.
local function accept_loop(server)
    while server.id do
        local stream = next_pending(server)
        if stream then
            stream.connection._fresh = false
            spawn(server.cq, handle_stream, server, stream)
        else
            server.arrived:wait()
        end
    end
    -- Closed: streams still queued are answered 503.
    for _, stream in ipairs(server.pending) do
        stream:shutdown()
        stream_done(stream)
    end
    server.pending = {}
end

-- New streams arrive as internal events: each starts its handler, through the server's accept
-- coroutine when it must wait (paused, or behind others).
cqueues._on(native.stream_event, function(server_id, ud, id, fields, minor, conn_id, has_body)
    local server = servers[server_id]
    if not server or not server.id then
        native.shutdown(ud)
        return
    end
    local stream = new_stream(server, ud, id, fields, minor, conn_id, has_body)
    if #server.pending == 0 and not server.paused then
        -- The common case: start its handler at once (the accept coroutine handles a backlog
        -- and pauses).
        stream.connection._fresh = false
        spawn(server.cq, handle_stream, server, stream)
        return
    end
    server.pending[#server.pending + 1] = stream
    server.arrived:signal()
end)

local function check_options(tbl)
    if type(tbl) ~= "table" then error("bad argument #1 (table of options expected)", 3) end
    if type(tbl.onstream) ~= "function" then error("missing 'onstream'", 3) end
    if tbl.onerror ~= nil and type(tbl.onerror) ~= "function" then
        error("'onerror' must be a function", 3)
    end
    if tbl.ctx ~= nil then
        error("a luaossl context (ctx) is not supported by ccserve: its TLS certificate is " ..
            "given with --tls-cert and --tls-key", 3)
    end
    if tbl.tls ~= nil and type(tbl.tls) ~= "boolean" then
        error("'tls' must be true, false or nil", 3)
    end
    if tbl.version ~= nil and tbl.version ~= 1.0 and tbl.version ~= 1.1 then
        error("http.server: only HTTP/1.0 and HTTP/1.1 are supported by ccserve (version = " ..
            tostring(tbl.version) .. ")", 3)
    end
    if tbl.cq ~= nil and cqueues.type(tbl.cq) ~= "controller" then
        error("optional cq field should be a cqueue controller", 3)
    end
    for _, name in ipairs({ "max_concurrent", "connection_setup_timeout", "client_timeout",
        "intra_stream_timeout" }) do
        local v = tbl[name]
        if v ~= nil and (type(v) ~= "number" or v ~= v or v <= 0) then
            error(("'%s' must be a positive number"):format(name), 3)
        end
    end
end

local function new_server(tbl, id, family, ip, port)
    local name = { family, ip, port, n = port and 3 or 2 } -- AF_UNIX: family and path
    local server = setmetatable({
        cq = tbl.cq or cqueues.new(),
        onstream = tbl.onstream,
        onerror_ = tbl.onerror,
        tls = tbl.tls,
        version = tbl.version,
        max_concurrent = tbl.max_concurrent,
        intra_stream_timeout = tbl.intra_stream_timeout,
        id = id,
        listener = id,
        port = port,
        name = name,
        pending = {},
        arrived = cc.new(),
        paused = false,
        n_running = 0,
        running = {}, -- stream -> the coroutine of its handler
    }, server_mt)
    servers[id] = server
    if port then by_port[port] = server end
    server.cq:wrap(accept_loop, server)
    return server
end

local http_server = {}

-- Binds `host`:`port` and returns a server; nil, message, errno if the address cannot be bound.
function http_server.listen(tbl)
    check_options(tbl)
    -- What every listener takes; the address goes in below.
    local opts = {
        max_concurrent = tbl.max_concurrent,
        connection_setup_timeout = tbl.connection_setup_timeout or tbl.client_timeout,
        intra_stream_timeout = tbl.intra_stream_timeout,
    }
    if tbl.path ~= nil then
        if type(tbl.path) ~= "string" then error("'path' must be a string", 2) end
        if tbl.unlink ~= nil and type(tbl.unlink) ~= "boolean" then
            error("'unlink' must be a boolean", 2)
        end
        if tbl.mode ~= nil and type(tbl.mode) ~= "string" then
            error("'mode' must be a string", 2)
        end
        opts.path, opts.unlink, opts.mode = tbl.path, tbl.unlink, tbl.mode
        local id, family, path = native.listen(nil, nil, opts)
        if not id then return nil, family, path end
        return new_server(tbl, id, family, path, nil)
    end
    if tbl.host == nil then error("need host or path", 2) end
    local port = tbl.port
    if port == nil then
        if tbl.tls == false then
            port = 80
        elseif tbl.tls == true then
            port = 443
        else
            error("need port", 2)
        end
    end
    port = tonumber(port)
    if not port or port % 1 ~= 0 then error("'port' must be a whole number", 2) end
    local host = tbl.host
    if tbl.family == "AF_INET6" and host == "*" then host = "::" end
    if port ~= 0 and by_port[port] and by_port[port].id then
        -- One listener per port in a script, even with `reuseport` (which shares a port
        -- between processes).
        return nil, ce.strerror(ce.EADDRINUSE) .. ": port " .. port ..
            " is served by another http.server of this script", ce.EADDRINUSE
    end
    opts.reuseport, opts.v6only, opts.tls = tbl.reuseport, tbl.v6only, tbl.tls
    local id, family, ip, bound = native.listen(host, port, opts)
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

-- Stops accepting and frees the port; requests not yet handled are answered 503, idle
-- connections are closed. Called from one of this server's handlers, the port is freed when
-- that handler returns, so that its own response goes out whole; the responses other handlers
-- are still writing are cut then (their writes fail with EPIPE).
function server_methods:close()
    if self.id then
        servers[self.id] = nil
        if self.port and by_port[self.port] == self then by_port[self.port] = nil end
        self.id = nil
        self.arrived:signal()
        local me = coroutine.running()
        for stream, co in pairs(self.running) do
            if co == me then self.close_after = stream end
        end
        if not self.close_after then close_listener(self) end
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
