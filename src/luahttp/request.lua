-- http.request: lua-http's HTTP client, for servers that also call out, over ccserve's client
-- (the one behind CraftOS's `http.request`: plain HTTP, redirects followed, the whole response
-- read before `go` returns, at most 16 MiB). `go` suspends only the calling coroutine.
local _, _, craftos = ...

local http_headers = require("http.headers")
local ce = require("cqueues.errno")

local request_methods = {
    follow_redirects = true,
    max_redirects = 5,
    expect_100_timeout = 1,
    version = 1.1,
}
local request_mt = { __index = request_methods, __name = "http.request" }

function request_mt:__tostring()
    return ("http.request{%s %s}"):format(self.headers:get(":method"), self:to_uri())
end

local http_request = {}

-- A GET request for `uri` (`http://host[:port]/path?query`).
function http_request.new_from_uri(uri, headers)
    if type(uri) ~= "string" then error("bad argument #1 to 'new_from_uri' (string expected)", 2) end
    local scheme, authority, path = uri:match("^(%a[%w+.-]*)://([^/?#]*)([^#]*)")
    if not scheme then error("new_from_uri: '" .. uri .. "' is not an absolute http URI", 2) end
    scheme = scheme:lower()
    if scheme ~= "http" and scheme ~= "https" and scheme ~= "ws" and scheme ~= "wss" then
        error("new_from_uri: scheme '" .. scheme .. "' is not http or https", 2)
    end
    authority = authority:gsub("^.*@", "") -- user info is not sent
    if path == "" then path = "/" elseif path:sub(1, 1) == "?" then path = "/" .. path end
    local h = headers and headers:clone() or http_headers.new()
    h:upsert(":method", "GET")
    h:upsert(":scheme", scheme)
    h:upsert(":authority", authority)
    h:upsert(":path", path)
    if not h:has("user-agent") then h:append("user-agent", "lua-http/0.4 (ccserve)") end
    return setmetatable({ headers = h, body = nil }, request_mt)
end

function http_request.new_connect()
    error("http.request.new_connect is not supported by ccserve", 2)
end

function request_methods:clone()
    return setmetatable({
        headers = self.headers:clone(),
        body = self.body,
        follow_redirects = self.follow_redirects,
        max_redirects = self.max_redirects,
        expect_100_timeout = self.expect_100_timeout,
        version = self.version,
    }, request_mt)
end

-- The request's URI, from its pseudo-headers.
function request_methods:to_uri(with_userinfo) -- luacheck: ignore 212
    local h = self.headers
    return ("%s://%s%s"):format(h:get(":scheme"), h:get(":authority"), h:get(":path"))
end

-- The body: a string, a file (read whole), or a function returning pieces until nil.
function request_methods:set_body(body)
    if type(body) == "function" then
        local parts = {}
        for piece in body do parts[#parts + 1] = piece end
        body = table.concat(parts)
    elseif io.type(body) == "file" then
        body = body:read("*a")
    elseif type(body) ~= "string" then
        error("bad argument #1 to 'set_body' (string, file or function expected)", 2)
    end
    self.body = body
    if not self.headers:has(":method") or self.headers:get(":method") == "GET" then
        self.headers:upsert(":method", "POST")
    end
    return true
end

-- The response stream `go` returns: the body was read whole.
local response_methods = {}
local response_mt = { __index = response_methods, __name = "http.h1_stream" }

function response_methods:get_headers()
    if self.headers_read then return nil end
    self.headers_read = true
    return self.response_headers
end

function response_methods:get_next_chunk()
    local body = self.body
    self.body = nil
    if body == nil or body == "" then return nil end
    return body
end

function response_methods:unget(str)
    self.body = str .. (self.body or "")
    return true
end

function response_methods:each_chunk()
    return function(s) return s:get_next_chunk() end, self
end

function response_methods:get_body_as_string()
    local body = self.body or ""
    self.body = nil
    return body
end

function response_methods:get_body_chars(n)
    local body = self.body
    if body == nil or body == "" then return nil end
    self.body = body:sub(n + 1)
    return body:sub(1, n)
end

function response_methods:get_body_until(pattern, plain, include_pattern)
    local body = self.body
    if body == nil or body == "" then return nil end
    local s, e = body:find(pattern, 1, plain)
    if not s then
        self.body = nil
        return body
    end
    self.body = body:sub(e + 1)
    return include_pattern and body:sub(1, e) or body:sub(1, s - 1)
end

function response_methods:save_body_to_file(file)
    assert(file:write(self:get_body_as_string()))
    return true
end

function response_methods:get_body_as_file()
    local file = assert(io.tmpfile())
    self:save_body_to_file(file)
    assert(file:seek("set"))
    return file
end

function response_methods:shutdown()
    self.body = nil
    return true
end

-- Waits for the next CraftOS event (in a cqueues coroutine, only that coroutine waits).
local function next_event()
    return os.pullEventRaw()
end

-- Sends the request and reads the response: its headers (`:status` first) and a stream to read
-- the body from; nil, message, errno if there is no response.
function request_methods:go(timeout)
    local h = self.headers
    local url = self:to_uri()
    local headers = {}
    for name, value in h:each() do
        if name:sub(1, 1) ~= ":" then headers[name] = value end
    end
    local ok, err = craftos.request({
        url = url,
        method = h:get(":method"),
        body = self.body,
        headers = headers,
        redirect = self.follow_redirects and self.max_redirects > 0,
        timeout = timeout,
    })
    if ok ~= true then return nil, tostring(err), ce.EINVAL end
    while true do
        local event, got_url, a, b = next_event()
        if event == "terminate" then error("Terminated", 0) end
        if got_url == url and (event == "http_success" or event == "http_failure") then
            local handle = event == "http_success" and a or b
            if not handle then
                local code = a == "Timed out" and ce.ETIMEDOUT or ce.ECONNREFUSED
                return nil, a, code
            end
            local response = http_headers.new()
            response:append(":status", tostring((handle.getResponseCode())))
            for name, value in pairs(handle.getResponseHeaders()) do
                response:append(name:lower(), value)
            end
            local body = handle.readAll()
            handle.close()
            return response, setmetatable({
                response_headers = response,
                body = body,
                connection = { version = 1.1 },
            }, response_mt)
        end
    end
end

http_request.methods = request_methods
http_request.mt = request_mt

return http_request
