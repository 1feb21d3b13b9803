-- The Lua half of the `http` API: http.listen as CraftOS-PC's ROM defines it, the CC: Tweaked
-- client wrappers, and the request/response handle tables. Returns the handle factories.
local native, support = ...
local ret, wrap, method, expect = support.ret, support.wrap, support.method, support.expect

http = {}
http.addListener = wrap(native.addListener)
http.removeListener = wrap(native.removeListener)
http.checkURL = wrap(native.checkURL)

-- Serve `port` until the callback returns a truthy value or a `server_stop` event arrives. Other
-- events are swallowed, as in CraftOS-PC. ccserve extension: port 0 serves an OS-chosen port.
function http.listen(port, callback)
    expect(1, port, "number")
    expect(2, callback, "function")
    port = http.addListener(port) or port
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

-- The `req`/`res` pair of an http_request event: plain tables of closures, no metatable.
function handles.server(ud)
    local req = {
        read = method(native.req_read, ud),
        readLine = method(native.req_readLine, ud),
        readAll = method(native.req_readAll, ud),
        close = method(native.req_close, ud),
        getURL = method(native.req_getURL, ud),
        getMethod = method(native.req_getMethod, ud),
        getRequestHeaders = method(native.req_getRequestHeaders, ud),
    }
    local res = {
        write = method(native.res_write, ud),
        writeLine = method(native.res_writeLine, ud),
        flush = method(native.res_flush, ud),
        close = method(native.res_close, ud),
        setStatusCode = method(native.res_setStatusCode, ud),
        setResponseHeader = method(native.res_setResponseHeader, ud),
    }
    return req, res
end

-- The response handle of http.get/http.post/http.request.
function handles.client(ud)
    return {
        read = method(native.cres_read, ud),
        readLine = method(native.cres_readLine, ud),
        readAll = method(native.cres_readAll, ud),
        close = method(native.cres_close, ud),
        getResponseCode = method(native.cres_getResponseCode, ud),
        getResponseHeaders = method(native.cres_getResponseHeaders, ud),
    }
end

return handles
