-- NodeMCU's `http` client module (ESP8266 firmware's API) over ccserve's HTTP client: each call
-- starts the request and returns; `callback(code, data, headers)` runs from the dispatcher when
-- the response is in (a pending request keeps the program running after its main chunk).
--
-- As on the firmware: `code` is the HTTP status, or -1 when there is no response (and `data` is
-- then nil); `headers` has lower-case names. `headers` given to a call may be a string of
-- "Name: value\r\n" lines, as the ESP8266 documentation has it, or a table, as the ESP32's.
-- Differences: https:// certificates are verified (against the system's store and --ca-file);
-- redirects are followed; the request runs on a thread of its own, so several may run at once.
local native, support, loop, craftos_request = ...
local expect = support.expect

local http = { OK = 0, ERROR = -1 }

local pending = {} -- url -> FIFO of callbacks (requests to one URL complete in order of events)

local function header_table(headers, index)
    if headers == nil or type(headers) == "table" then return headers end
    if type(headers) ~= "string" then
        error(("bad argument #%d (string or table of headers expected, got %s)"):format(index,
            type(headers)), 3)
    end
    local t = {}
    for line in headers:gmatch("[^\r\n]+") do
        local name, value = line:match("^%s*([^:]-)%s*:%s*(.-)%s*$")
        if name and name ~= "" then t[name] = value end
    end
    return t
end

local function start(url, method, headers, body, callback)
    expect(1, url, "string")
    headers = header_table(headers, 3)
    if body ~= nil and type(body) ~= "string" then body = tostring(body) end
    if callback ~= nil and type(callback) ~= "function" then
        error("bad argument (callback: function expected, got " .. type(callback) .. ")", 3)
    end
    local queue = pending[url]
    if not queue then
        queue = {}
        pending[url] = queue
    end
    queue[#queue + 1] = callback or false
    loop.hold()
    -- A URL the client refuses queues http_failure as well: the callback gets -1.
    craftos_request({ url = url, method = method, headers = headers, body = body })
end

local function finish(url, handle)
    local queue = pending[url]
    if not queue or #queue == 0 then return end -- not ours (a CraftOS call in the same script)
    local callback = table.remove(queue, 1)
    if #queue == 0 then pending[url] = nil end
    loop.release()
    local code, data, headers = -1, nil, nil
    if handle then
        code = handle.getResponseCode()
        data = handle.readAll() or ""
        headers = {}
        for name, value in pairs(handle.getResponseHeaders()) do headers[name:lower()] = value end
        handle.close()
    end
    if callback then loop.call(callback, code, data, headers) end
end

loop.on("http_success", function(url, handle) finish(url, handle) end)
loop.on("http_failure", function(url, _, handle) finish(url, handle) end)

function http.get(url, headers, callback)
    start(url, "GET", headers, nil, callback)
end

function http.post(url, headers, body, callback)
    start(url, "POST", headers, body, callback)
end

function http.put(url, headers, body, callback)
    start(url, "PUT", headers, body, callback)
end

http["delete"] = function(url, headers, body, callback)
    start(url, "DELETE", headers, body, callback)
end

function http.request(url, method, headers, body, callback)
    expect(2, method, "string")
    start(url, method:upper(), headers, body, callback)
end

return loop.not_provided(http, "http")
