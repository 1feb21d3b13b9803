-- NodeMCU's `httpserver` module (`require("httpserver")`) on ccserve's HTTP/1.1 engine.
--
-- The engine parses each request (any method, HTTP/1.0 and 1.1, chunked bodies decoded,
-- pipelining, keep-alive, `100 Continue`); this file turns it into NodeMCU's callbacks:
-- `handler(req, res)` once the head has arrived, then `req:onheader(name, value)` for each field
-- (names in lower case), then `req:ondata(chunk)` for each piece of the body and one final
-- `req:ondata(nil)`. The handler may set or change `onheader`/`ondata` at any time; each call
-- looks them up as it is made.
--
-- A response is gathered while a callback runs and goes out when it returns (the firmware also
-- sends only after the callback): a response finished within one callback leaves whole, with a
-- Content-Length, in one write; one sent over several callbacks (a timer streaming it) goes out
-- chunked, piece by piece. The status line carries the real reason phrase.
local native, support, loop, stream = ...
local expect, ERR, header_fault = support.expect, support.ERR, support.header_fault

local read, respond, push_data, room = stream.read, stream.respond, stream.data, stream.room
-- Natives return an error marker rather than raising; `wrap` raises it (a bad port, TLS asked
-- for without a certificate).
local listen = support.wrap(native.listen)
local concat, tostring, type = table.concat, tostring, type

local httpserver = {}

local servers = {}  -- listener id -> server
local by_port = {}  -- port -> server (createServer on a port in use replaces its server)
local readers = {}  -- exchange id -> response state whose body read waits for the stream
local writers = {}  -- exchange id -> response state whose output waits for room
local dirty, n_dirty = {}, 0 -- response states with output to push after the callback

-- Responses -----------------------------------------------------------------------------------

-- Pushes what `st` has gathered. Output waits, in order, while the client is slow to read.
local function flush(st)
    if st.gone or writers[st.id] then return end
    local out = st.out
    local data = (#out == 1 and out[1]) or concat(out)
    if #out > 0 then st.out = {} end
    local ok, errno
    if not st.head_sent then
        if not st.started and not st.finished then return end
        st.head_sent = true
        ok, errno = respond(st.ud, st.status or 200, st.headers, st.finished and #data or nil,
            data, st.finished)
    elseif data ~= "" or st.finished then
        ok, errno = push_data(st.ud, data, st.finished)
    else
        return
    end
    if ok == nil then
        -- Accepted, and the buffer is full: the next push waits until the client reads.
        if not st.finished and room(st.ud) == nil then writers[st.id] = st end
    elseif ok == false then
        st.gone = true -- the client went away (errno EPIPE): later output is dropped
    elseif ok == ERR then
        -- The engine refused the response (the checks in this file should have caught it
        -- first): the client gets a `500` rather than waiting, and the program hears why.
        st.gone = true
        native.abandon(st.ud, 500)
        loop.report("httpserver: the response could not be sent: " .. tostring(errno))
    end
end

-- After every callback: push the output the callback produced.
local function flush_dirty()
    if n_dirty == 0 then return end
    for i = 1, n_dirty do
        local st = dirty[i]
        dirty[i] = nil
        st.dirty = false
        flush(st)
    end
    n_dirty = 0
end
loop.after_callback(flush_dirty)

local function mark(st)
    if not st.dirty then
        st.dirty = true
        n_dirty = n_dirty + 1
        dirty[n_dirty] = st
    end
end

-- Argument errors name the method and point at the script's call (level 4: the check, the
-- method, the script; the wrappers in `new_response` are tail calls and leave no frame).
local function bad(index, name, expected, got, level)
    error(("bad argument #%d to '%s' (%s expected, got %s)"):format(index, name, expected, got),
        level or 4)
end

-- Arguments are counted without `self`, as the documentation lists them (data, code).
local function check_status(code, index, name)
    if code == nil then return nil end
    if type(code) ~= "number" then bad(index, name, "number", type(code)) end
    if code ~= math.floor(code) or code < 100 or code > 999 or code == 101 then
        bad(index, name, "HTTP status code", tostring(code))
    end
    return code
end

local function check_data(data, index, name)
    local t = type(data)
    if t == "number" then return tostring(data) end
    if t ~= "string" and t ~= "nil" then bad(index, name, "string", t) end
    return data
end

-- A response's state is kept under this key of its `res` table.
local ST = {}

local function state_of(res, name)
    local st = type(res) == "table" and res[ST]
    if not st then error(("%s: call it as res:%s(...)"):format(name, name), 3) end
    return st
end

-- res:send(data, code): the first code given is the status (default 200); data starts the body,
-- after which headers can no longer be added (`res.send_header` becomes nil).
local function send(res, data, code)
    local st = state_of(res, "send")
    code = check_status(code, 2, "send")
    data = check_data(data, 1, "send")
    if st.finished then return end
    st.status = st.status or code
    if data then
        if not st.started then
            st.started = true
            res.send_header = nil
        end
        if data ~= "" then st.out[#st.out + 1] = data end
        mark(st)
    end
end

local function send_header(res, name, value)
    local st = state_of(res, "send_header")
    if type(name) ~= "string" then bad(1, "send_header", "string", type(name), 3) end
    if type(value) == "number" then value = tostring(value) end
    if type(value) ~= "string" then bad(2, "send_header", "string", type(value), 3) end
    -- The firmware sends whatever it is given; a CR or LF would end the header early and let a
    -- value smuggle in header lines of its own.
    local fault = header_fault(name, value)
    if fault == "name" then
        error("bad argument #1 to 'send_header' (not a header name: a token such as X-Name)", 2)
    elseif fault then
        error("bad argument #2 to 'send_header' (the value contains CR, LF or NUL)", 2)
    end
    if st.started then error("send_header: the body has started; headers go before it", 2) end
    local h = st.headers
    h[#h + 1] = name
    h[#h + 1] = value
end

-- res:finish([data[, code]]): the response ends.
local function finish(res, st, data, code)
    code = check_status(code, 2, "finish")
    data = check_data(data, 1, "finish")
    if st.finished then return end
    st.status = st.status or code
    if data and data ~= "" then st.out[#st.out + 1] = data end
    if data and not st.started then
        st.started = true
        res.send_header = nil
    end
    st.finished = true
    mark(st)
end

-- `send` and `send_header` are methods, as upstream's (they use `self`); `finish` is also called
-- as `res.finish(...)` by real scripts, so each response has its own, taking both forms.
local function new_response(ud, id)
    local st = { ud = ud, id = id, headers = {}, out = {} }
    local res = { send = send, send_header = send_header, [ST] = st }
    res.finish = function(a, ...)
        if a == res then return finish(res, st, ...) end
        return finish(res, st, a, ...)
    end
    return res, st
end

-- Requests ------------------------------------------------------------------------------------

local BODY_FAILURE = { E2BIG = 413, ETIMEDOUT = 408, EILSEQ = 400 }

local function call_ondata(req, chunk)
    local f = req.ondata
    if f then loop.call(f, req, chunk) end
end

-- Feeds the body to `req.ondata` as it arrives, then `ondata(nil)`.
local function pump(st)
    local req, ud = st.req, st.ud
    while true do
        local got, errno = read(ud, 64 * 1024)
        if got == nil then
            readers[st.id] = st -- more when the stream is ready
            return
        elseif got == true then
            st.req = nil
            return call_ondata(req, nil)
        elseif got == false then
            -- The body failed (too large, too slow, malformed, client gone): answered with the
            -- matching status unless a response already started, which is cut.
            st.req, st.finished, st.gone = nil, true, true
            native.abandon(ud, BODY_FAILURE[errno] or 400)
            return
        end
        call_ondata(req, got)
    end
end

loop.on(stream.stream_ready, function(id)
    local st = readers[id]
    if st then
        readers[id] = nil
        pump(st)
    end
    st = writers[id]
    if st then
        writers[id] = nil
        flush(st)
    end
end)

local conn_methods = {}
local conn_mt = { __index = conn_methods, __name = "net.socket" }
-- The client's `ip, port`.
function conn_methods:getpeer() return native.peer(self.ud) end
local function refuse(name)
    conn_methods[name] = function()
        error(("req.conn:%s: httpserver owns this connection; use res:send/res:finish"):format(
            name), 2)
    end
end
refuse("on")
refuse("send")
loop.not_provided(conn_methods, "req.conn")

local function serve(server, ud, id)
    local method, url, has_body = native.request(ud)
    local req = { method = method, url = url, conn = setmetatable({ ud = ud }, conn_mt) }
    local res, st = new_response(ud, id)
    if not loop.call(server.handler, req, res) and not st.started then
        -- The handler failed before it answered: `500` now rather than a client left waiting.
        st.finished = true
        native.abandon(ud, 500)
        return
    end
    if req.onheader then
        local fields = native.headers(ud)
        for i = 1, #fields, 2 do
            local f = req.onheader
            if f then loop.call(f, req, fields[i], fields[i + 1]) end
        end
    end
    if has_body then
        st.req = req
        pump(st)
    else
        call_ondata(req, nil)
    end
end

loop.on(native.request_event, function(server_id, ud, id)
    local server = servers[server_id]
    if server then
        serve(server, ud, id)
    else
        stream.shutdown(ud) -- closed meanwhile: 503
    end
end)

-- Servers -------------------------------------------------------------------------------------

local server_methods = {}
local server_mt = { __index = server_methods, __name = "net.server" }
function server_mt:__tostring() return ("net.server{port=%d}"):format(self.port) end

-- Stops listening. Responses finished by now go out first (a handler may close its server
-- after answering); ones still open are cut, as the listener's connections end.
function server_methods:close()
    if not self.id then return end
    flush_dirty()
    servers[self.id] = nil
    if by_port[self.port] == self then by_port[self.port] = nil end
    stream.close(self.id)
    self.id = nil
    loop.release()
end

-- `port, ip` the server listens on (as net.server:getaddr).
function server_methods:getaddr()
    return self.port, self.ip
end
loop.not_provided(server_methods, "net.server")

-- createServer(port, handler[, options]): listens on `port` (0: one the system chooses, see
-- getaddr) on ccserve's `--bind` address; `options` is a ccserve extension ({tls = true}: HTTPS
-- with the certificate of --tls-cert). A server created on a port this program already serves replaces
-- it, as the module's one-server rule does on the board; other ports can be served side by
-- side.
function httpserver.createServer(port, handler, options)
    if type(port) == "string" and tonumber(port) then port = tonumber(port) end
    expect(1, port, "number")
    expect(2, handler, "function")
    expect(3, options, "table", "nil")
    local old = by_port[port]
    if old then old:close() end
    local id, bound = listen(port, options)
    if not id then error(("createServer: cannot listen on port %d: %s"):format(port, bound), 2) end
    local server = setmetatable({ id = id, port = bound, ip = native.bind_ip, handler = handler },
        server_mt)
    servers[id] = server
    by_port[bound] = server
    loop.hold()
    return server
end

return loop.not_provided(httpserver, "httpserver")
