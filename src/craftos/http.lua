-- The Lua half of the `http` API: http.listen as CraftOS-PC's ROM defines it, the CC: Tweaked
-- client wrappers, and the request/response handle tables. Returns the handle factories.
local native, support = ...
local ret, wrap, expect = support.ret, support.wrap, support.expect

http = {}
http.addListener = wrap(native.addListener)
http.removeListener = wrap(native.removeListener)
http.checkURL = wrap(native.checkURL)

-- Serve `port` until the callback returns a truthy value or a `server_stop` event arrives. Other
-- events are swallowed, as in CraftOS-PC. ccserve extensions: port 0 serves an OS-chosen port;
-- `options` ({tls = true}) is passed to http.addListener.
function http.listen(port, callback, options)
    expect(1, port, "number")
    expect(2, callback, "function")
    expect(3, options, "table", "nil")
    port = http.addListener(port, options) or port
    while true do
        local event, p, req, res = os.pullEvent()
        if event == "server_stop" then
            http.removeListener(port)
            return
        elseif event == "http_request" and p == port then
            if callback(req, res) then
                http.removeListener(port)
                return
            end
        end
    end
end

local function check_options(options, body)
    expect(1, options.url, "string")
    if body == false then expect(1, options.body, "nil") else expect(1, options.body, "string", "nil") end
    expect(1, options.headers, "table", "nil")
    expect(1, options.method, "string", "nil")
    expect(1, options.redirect, "boolean", "nil")
    expect(1, options.timeout, "number", "nil")
end

local native_request = wrap(native.request)

local function wrap_request(url, ...)
    local ok, err = native_request(...)
    if ok then
        while true do
            local event, param1, param2, param3 = os.pullEvent()
            if event == "http_success" and param1 == url then
                return param2
            elseif event == "http_failure" and param1 == url then
                return nil, param2, param3
            end
        end
    end
    return nil, err
end

function http.get(url, headers, binary)
    if type(url) == "table" then
        check_options(url, false)
        return wrap_request(url.url, url)
    end
    expect(1, url, "string")
    expect(2, headers, "table", "nil")
    expect(3, binary, "boolean", "nil")
    return wrap_request(url, url, nil, headers, binary)
end

function http.post(url, body, headers, binary)
    if type(url) == "table" then
        check_options(url, true)
        return wrap_request(url.url, url)
    end
    expect(1, url, "string")
    expect(2, body, "string")
    expect(3, headers, "table", "nil")
    expect(4, binary, "boolean", "nil")
    return wrap_request(url, url, body, headers, binary)
end

function http.request(url, body, headers, binary)
    local target
    if type(url) == "table" then
        check_options(url)
        target = url.url
    else
        expect(1, url, "string")
        expect(2, body, "string", "nil")
        expect(3, headers, "table", "nil")
        expect(4, binary, "boolean", "nil")
        target = url
    end
    local ok, err = native_request(url, body, headers, binary)
    if not ok then os.queueEvent("http_failure", target, err) end
    return ok, err
end

local handles = {}

-- Handle methods are closures over the handle's userdata: `res.write(x)` has no `self`, so each
-- handle needs functions of its own. They are written out here rather than made by a helper, so
-- that all of a handle's closures share one upvalue (`ud`) and building a handle allocates only
-- the closures and the table, and each checks its native's result for the error sentinel itself
-- rather than through `ret` (one Lua call less per method call). Each method returns a known
-- number of values (none, one, or two for getResponseCode), exactly as many as `ret` passed on.
-- Arguments go to the native unchanged; it skips a leading table, the handle itself in the
-- `res:write(x)` form (or a copy of it), as `support.method` does.
local ERR = support.ERR
local req_read, req_readLine, req_readAll = native.req_read, native.req_readLine, native.req_readAll
local req_getURL, req_getMethod = native.req_getURL, native.req_getMethod
local req_getRequestHeaders = native.req_getRequestHeaders
local res_write, res_writeLine, res_flush = native.res_write, native.res_writeLine, native.res_flush
local res_flushed, STREAM_READY, KEEP_EVENTS = native.res_flushed, native.stream_ready, native.keep_events
local res_close, res_setStatusCode = native.res_close, native.res_setStatusCode
local res_setResponseHeader = native.res_setResponseHeader
local cres_read, cres_readLine, cres_readAll = native.cres_read, native.cres_readLine, native.cres_readAll
local cres_close, cres_getResponseCode = native.cres_close, native.cres_getResponseCode
local cres_getResponseHeaders = native.cres_getResponseHeaders

-- `req.close()` does nothing (as in CraftOS-PC), so every request shares one.
local function req_close() end

-- The values of an http_request event: its name, the port, and the `req`/`res` pair (plain tables
-- of closures, no metatable).
function handles.http_request(ud, port)
    local req = {
        read = function(...)
            local v, e = req_read(ud, ...)
            if v == ERR then error(e, 0) end
            return v
        end,
        readLine = function(...)
            local v, e = req_readLine(ud, ...)
            if v == ERR then error(e, 0) end
            return v
        end,
        readAll = function(...)
            local v, e = req_readAll(ud, ...)
            if v == ERR then error(e, 0) end
            return v
        end,
        close = req_close,
        getURL = function(...)
            local v, e = req_getURL(ud, ...)
            if v == ERR then error(e, 0) end
            return v
        end,
        getMethod = function(...)
            local v, e = req_getMethod(ud, ...)
            if v == ERR then error(e, 0) end
            return v
        end,
        getRequestHeaders = function(...)
            local v, e = req_getRequestHeaders(ud, ...)
            if v == ERR then error(e, 0) end
            return v
        end,
    }
    -- These natives return nothing, or the sentinel and a message.
    local res = {
        write = function(...)
            local err, e = res_write(ud, ...)
            if err then error(e, 0) end
        end,
        writeLine = function(...)
            local err, e = res_writeLine(ud, ...)
            if err then error(e, 0) end
        end,
        -- ccserve extension: sends the head and what is written so far, and goes on chunked.
        -- Returns true, or false once the client has gone. When the client is slower than the
        -- script, waits until it has taken enough; events arriving meanwhile stay queued.
        flush = function(...)
            local r, e = res_flush(ud, ...)
            if r == ERR then error(e, 0) end
            while r == nil do
                if coroutine.yield(STREAM_READY, KEEP_EVENTS) == "terminate" then
                    error("Terminated", 0)
                end
                r, e = res_flushed(ud)
                if r == ERR then error(e, 0) end
            end
            return r
        end,
        close = function(...)
            local err, e = res_close(ud, ...)
            if err then error(e, 0) end
        end,
        setStatusCode = function(...)
            local err, e = res_setStatusCode(ud, ...)
            if err then error(e, 0) end
        end,
        setResponseHeader = function(...)
            local err, e = res_setResponseHeader(ud, ...)
            if err then error(e, 0) end
        end,
    }
    return "http_request", port, req, res
end

-- The response handle of http.get/http.post/http.request (not on the server's request path).
function handles.client(ud)
    return {
        read = function(...) return ret(cres_read(ud, ...)) end,
        readLine = function(...) return ret(cres_readLine(ud, ...)) end,
        readAll = function(...) return ret(cres_readAll(ud, ...)) end,
        close = function(...) return ret(cres_close(ud, ...)) end,
        getResponseCode = function(...) return ret(cres_getResponseCode(ud, ...)) end,
        getResponseHeaders = function(...) return ret(cres_getResponseHeaders(ud, ...)) end,
    }
end

return handles
