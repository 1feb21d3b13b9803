-- The response handle of an http_request event: status, headers, body, close, errors.
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

local exchange = t.exchange

-- Sends a GET (or the options table) and returns the response handle, whatever the status.
local function get(target)
    local h, reason, fh = http.get(target)
    if h then return h end
    if fh then return fh end
    error("request failed: " .. tostring(reason), 2)
end

local function outcome(fn, ...)
    local ok, e = pcall(fn, ...)
    return ok and "ok" or e
end

t.test("the default response is 200 OK with an empty body and no Content-Type", function()
    local h
    exchange(function() end, function(base)
        h = get(base .. "/")
    end)
    local code, reason = h.getResponseCode()
    t.eq(code, 200, "code")
    t.eq(reason, "OK", "reason")
    t.eq(h.readAll(), "", "body")
    local headers = h.getResponseHeaders()
    t.eq(headers["Content-Length"], "0", "Content-Length")
    t.eq(headers["Content-Type"], nil, "no Content-Type")
    t.ok(headers["Date"], "Date header")
end)

t.test("setStatusCode(404) sends the standard reason and http.get returns nil, reason, handle", function()
    local a, b, c
    exchange(function(_, res)
        res.setStatusCode(404)
        res.write("missing")
    end, function(base)
        a, b, c = http.get(base .. "/nope")
    end)
    t.eq(a, nil, "first value")
    t.eq(b, "Not Found", "reason")
    t.eq(type(c), "table", "handle")
    local code, reason = c.getResponseCode()
    t.eq(code, 404, "code")
    t.eq(reason, "Not Found", "reason from handle")
    t.eq(c.readAll(), "missing", "body")
end)

t.test("setStatusCode with a reason sends that reason", function()
    local h1, h2
    exchange(function(req, res)
        if req.getURL() == "/yay" then res.setStatusCode(201, "Yay") else res.setStatusCode(200, "Fine Thanks") end
    end, function(base)
        h1 = get(base .. "/yay")
        h2 = get(base .. "/fine")
    end)
    local code, reason = h1.getResponseCode()
    t.eq(code, 201, "code")
    t.eq(reason, "Yay", "custom reason")
    code, reason = h2.getResponseCode()
    t.eq(code, 200, "code 2")
    t.eq(reason, "Fine Thanks", "reason with spaces")
end)

t.test("standard reason phrases for other codes", function()
    local codes = { 201, 202, 301, 400, 418, 500, 503 }
    local phrases = {
        [201] = "Created", [202] = "Accepted", [301] = "Moved Permanently", [400] = "Bad Request",
        [418] = "I'm a teapot", [500] = "Internal Server Error", [503] = "Service Unavailable",
    }
    local got = {}
    exchange(function(req, res)
        res.setStatusCode(tonumber(req.getURL():sub(2)))
    end, function(base)
        for _, c in ipairs(codes) do
            local h = get({ url = base .. "/" .. c, redirect = false })
            got[c] = table.pack(h.getResponseCode())
        end
    end)
    for _, c in ipairs(codes) do
        t.eq(got[c][1], c, "code " .. c)
        t.eq(got[c][2], phrases[c], "reason for " .. c)
    end
end)

t.test("setStatusCode can be called after write, and the last call wins", function()
    local h
    exchange(function(_, res)
        res.write("body first")
        res.setStatusCode(500)
        res.setStatusCode(202)
    end, function(base)
        h = get(base .. "/")
    end)
    t.eq((h.getResponseCode()), 202, "code")
    t.eq(h.readAll(), "body first", "body")
end)

t.test("setStatusCode accepts a numeric string", function()
    local h
    exchange(function(_, res) res.setStatusCode("202") end, function(base) h = get(base .. "/") end)
    t.eq((h.getResponseCode()), 202, "code")
end)

t.test("setStatusCode argument errors", function()
    local r = {}
    exchange(function(_, res)
        r.none = outcome(res.setStatusCode)
        r.str = outcome(res.setStatusCode, "abc")
        r.low = outcome(res.setStatusCode, 99)
        r.high = outcome(res.setStatusCode, 1000)
        r.crlf = outcome(res.setStatusCode, 200, "a\r\nX-Evil: 1")
    end, function(base)
        local h = get(base .. "/")
        t.eq((h.getResponseCode()), 200, "status unchanged by failed calls")
        t.eq(h.getResponseHeaders()["X-Evil"], nil, "no injected header")
    end)
    t.eq(r.none, "bad argument #1 (expected number, got no value)", "no value")
    t.eq(r.str, "bad argument #1 (expected number, got string)", "string")
    -- Codes outside 100..999 and CR/LF in the reason are refused (ccserve; CraftOS-PC sends them).
    t.ok(r.low:match("^bad argument #1 "), "99: " .. r.low)
    t.ok(r.high:match("^bad argument #1 "), "1000: " .. r.high)
    t.ok(r.crlf:match("^bad argument #2 "), "CRLF reason: " .. r.crlf)
end)

t.test("setResponseHeader sets headers the client sees", function()
    local h
    exchange(function(_, res)
        res.setResponseHeader("Content-Type", "text/plain; charset=utf-8")
        res.setResponseHeader("X-One", "1")
        res.setResponseHeader("X-Num", 42)
        res.setResponseHeader("X-Empty", "")
    end, function(base) h = get(base .. "/") end)
    local headers = h.getResponseHeaders()
    t.eq(headers["Content-Type"], "text/plain; charset=utf-8", "Content-Type")
    t.eq(headers["X-One"], "1", "X-One")
    t.eq(headers["X-Num"], "42", "number value")
    t.eq(headers["X-Empty"], "", "empty value")
end)

t.test("setResponseHeader replaces case-insensitively, keeping the first spelling", function()
    local h
    exchange(function(_, res)
        res.setResponseHeader("X-Test", "a")
        res.setResponseHeader("x-test", "b")
        res.setResponseHeader("X-TEST", "c")
    end, function(base) h = get(base .. "/") end)
    local headers = h.getResponseHeaders()
    t.eq(headers["X-Test"], "c", "replaced value under the first spelling")
    t.eq(headers["x-test"], nil, "no second header (x-test)")
    t.eq(headers["X-TEST"], nil, "no third header (X-TEST)")
end)

t.test("setResponseHeader argument errors", function()
    local r = {}
    exchange(function(_, res)
        r.none = outcome(res.setResponseHeader)
        r.one = outcome(res.setResponseHeader, "X")
        r.nilname = outcome(res.setResponseHeader, nil, "v")
        r.boolval = outcome(res.setResponseHeader, "X", true)
        r.badname = outcome(res.setResponseHeader, "Bad Name", "v")
        r.badval = outcome(res.setResponseHeader, "X-Evil", "a\r\nInjected: 1")
    end, function(base)
        local h = get(base .. "/")
        t.eq(h.getResponseHeaders()["Injected"], nil, "nothing injected")
        t.eq(h.getResponseHeaders()["X-Evil"], nil, "rejected header not sent")
    end)
    t.eq(r.none, "bad argument #1 (expected string, got no value)", "no arguments")
    t.eq(r.one, "bad argument #2 (expected string, got no value)", "no value")
    t.eq(r.nilname, "bad argument #1 (expected string, got nil)", "nil name")
    t.eq(r.boolval, "bad argument #2 (expected string, got boolean)", "boolean value")
    t.ok(r.badname:match("^bad argument #1 "), "invalid name: " .. r.badname)
    t.ok(r.badval:match("^bad argument #2 "), "CRLF value: " .. r.badval)
end)

t.test("write and writeLine build the body; numbers are formatted as Lua does", function()
    local h
    exchange(function(_, res)
        res.write("a")
        res.write(12.5)
        res.write(5)
        res.writeLine("x")
        res.writeLine(7)
        res.write("")
        res.write("\0z")
    end, function(base) h = get(base .. "/") end)
    t.eq(h.readAll(), "a12.55x\n7\n\0z", "body")
    t.eq(h.getResponseHeaders()["Content-Length"], "12", "Content-Length")
end)

t.test("write of 10/2 gives \"5\" under Lua 5.2", function()
    local h
    exchange(function(_, res) res.write(10 / 2) end, function(base) h = get(base .. "/") end)
    if _VERSION == "Lua 5.2" then
        t.eq(h.readAll(), "5", "body")
    else
        t.eq(h.readAll(), tostring(10 / 2), "body")
    end
end)

t.test("write and writeLine argument errors", function()
    local r = {}
    exchange(function(_, res)
        r.w_none = outcome(res.write)
        r.w_nil = outcome(res.write, nil)
        r.w_bool = outcome(res.write, true)
        r.wl_none = outcome(res.writeLine)
        r.wl_fn = outcome(res.writeLine, print)
        res.write("ok")
    end, function(base)
        t.eq(get(base .. "/").readAll(), "ok", "failed writes add nothing")
    end)
    t.eq(r.w_none, "bad argument #1 (expected string, got no value)", "write()")
    t.eq(r.w_nil, "bad argument #1 (expected string, got nil)", "write(nil)")
    t.eq(r.w_bool, "bad argument #1 (expected string, got boolean)", "write(true)")
    t.eq(r.wl_none, "bad argument #1 (expected string, got no value)", "writeLine()")
    t.eq(r.wl_fn, "bad argument #1 (expected string, got function)", "writeLine(print)")
end)

t.test("a large response body arrives intact with the right Content-Length", function()
    local chunk = ("0123456789abcdef"):rep(64) -- 1 KiB
    local h
    exchange(function(_, res)
        for i = 1, 1024 do res.write(chunk) end
        res.write("END")
    end, function(base) h = get(base .. "/") end)
    local body = h.readAll()
    t.eq(#body, 1024 * 1024 + 3, "length")
    t.eq(body:sub(-3), "END", "tail")
    t.ok(body:sub(1, #chunk) == chunk, "head")
    t.eq(h.getResponseHeaders()["Content-Length"], tostring(1024 * 1024 + 3), "Content-Length")
end)

t.test("all byte values survive the response body", function()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local body = table.concat(bytes)
    local h
    exchange(function(_, res) res.write(body) end, function(base) h = get(base .. "/") end)
    t.ok(h.readAll() == body, "bytes intact")
end)

t.test("flush sends the head and what was written, then the body goes on chunked", function()
    local flushed, after_flush, h
    exchange(function(_, res)
        res.setStatusCode(202)
        res.write("before ")
        flushed = table.pack(res.flush())
        after_flush = table.pack(pcall(res.setStatusCode, 404))
        res.write("after")
    end, function(base) h = get(base .. "/") end)
    t.eq(flushed.n, 1, "flush returns one value")
    t.eq(flushed[1], true, "flush returns true while the client is there")
    t.eq(after_flush[1], false, "setStatusCode after flush raises")
    t.eq(after_flush[2], "the response head was already sent (by res.flush)", "message")
    t.eq((h.getResponseCode()), 202, "status set before flush applies")
    t.eq(h.getResponseHeaders()["Transfer-Encoding"], "chunked", "chunked after flush")
    t.eq(h.getResponseHeaders()["Content-Length"], nil, "no length after flush")
    t.eq(h.readAll(), "before after", "body")
end)

t.test("close returns nothing and sends the response", function()
    local n, h
    exchange(function(_, res)
        res.write("closed")
        n = select("#", res.close())
    end, function(base) h = get(base .. "/") end)
    t.eq(n, 0, "close returns nothing")
    t.eq(h.readAll(), "closed", "body")
end)

t.test("every response method raises 'attempt to use a closed file' after close", function()
    local r = {}
    exchange(function(_, res)
        res.write("sent")
        res.close()
        r.write = outcome(res.write, "x")
        r.writeLine = outcome(res.writeLine, "x")
        r.flush = outcome(res.flush)
        r.setStatusCode = outcome(res.setStatusCode, 500)
        r.setResponseHeader = outcome(res.setResponseHeader, "X-Late", "1")
        r.close = outcome(res.close)
    end, function(base)
        local h = get(base .. "/")
        t.eq((h.getResponseCode()), 200, "late setStatusCode ignored")
        t.eq(h.readAll(), "sent", "late writes ignored")
        t.eq(h.getResponseHeaders()["X-Late"], nil, "late header ignored")
    end)
    for _, k in ipairs({ "write", "writeLine", "flush", "setStatusCode", "setResponseHeader", "close" }) do
        t.eq(r[k], "attempt to use a closed file", k)
    end
end)

t.test("the colon form works on the response handle", function()
    local h
    exchange(function(req, res)
        res:setStatusCode(202, "Colon")
        res:setResponseHeader("X-Colon", "yes")
        res:write("a")
        res:writeLine("b")
        res:flush()
        res:write(req:getURL())
        res:close()
    end, function(base) h = get(base .. "/c?d") end)
    local code, reason = h.getResponseCode()
    t.eq(code, 202, "code")
    t.eq(reason, "Colon", "reason")
    t.eq(h.getResponseHeaders()["X-Colon"], "yes", "header")
    t.eq(h.readAll(), "ab\n/c?d", "body")
end)

t.test("the response handle is a plain table with exactly the documented methods", function()
    local keys, mt
    exchange(function(_, res)
        mt = getmetatable(res)
        keys = {}
        for k, v in pairs(res) do keys[#keys + 1] = k .. ":" .. type(v) end
        table.sort(keys)
    end, function(base) get(base .. "/") end)
    t.eq(mt, nil, "metatable")
    t.eq(table.concat(keys, ","),
        "close:function,flush:function,setResponseHeader:function,setStatusCode:function,"
            .. "write:function,writeLine:function", "keys")
end)

t.test("handles accept new fields and replaced methods", function()
    local h, field
    exchange(function(req, res)
        req.tag = "request-tag"
        res.tag = "response-tag"
        local original = res.write
        res.write = function(s) return original(tostring(s):upper()) end
        res.write("shout ")
        res.write(req.tag)
        field = res.tag
    end, function(base) h = get(base .. "/") end)
    t.eq(field, "response-tag", "field kept")
    t.eq(h.readAll(), "SHOUT REQUEST-TAG", "replaced method used")
end)

t.test("a pairs copy of the handles works like the originals", function()
    local h
    exchange(function(req, res)
        local rq, rs = {}, {}
        for k, v in pairs(req) do rq[k] = v end
        for k, v in pairs(res) do rs[k] = v end
        rs.setStatusCode(203)
        rs.setResponseHeader("X-Copy", "1")
        rs.write(rq.getMethod() .. " ")
        rs:write(rq:readAll())
        rs.close()
    end, function(base)
        h = t.ok(http.post(base .. "/copy", "payload"), "post")
    end)
    t.eq((h.getResponseCode()), 203, "code")
    t.eq(h.getResponseHeaders()["X-Copy"], "1", "header")
    t.eq(h.readAll(), "POST payload", "body")
end)

t.test("a HEAD response announces the body length but sends no body", function()
    local h
    exchange(function(_, res) res.write("12345678") end, function(base)
        h = get({ url = base .. "/", method = "HEAD" })
    end)
    t.eq(h.getResponseHeaders()["Content-Length"], "8", "Content-Length")
    t.eq(h.readAll(), "", "no body")
end)

t.test("a 204 response has no body and no Content-Length", function()
    local h
    exchange(function(_, res)
        res.setStatusCode(204)
        res.write("ignored")
    end, function(base) h = get(base .. "/") end)
    t.eq((h.getResponseCode()), 204, "code")
    t.eq(h.getResponseHeaders()["Content-Length"], nil, "no Content-Length")
    t.eq(h.readAll(), "", "no body")
end)

t.test("script-set framing headers do not change the framing", function()
    local h
    exchange(function(_, res)
        res.setResponseHeader("Content-Length", "2")
        res.setResponseHeader("Transfer-Encoding", "chunked")
        res.write("full body")
    end, function(base) h = get(base .. "/") end)
    t.eq(h.readAll(), "full body", "body")
    t.eq(h.getResponseHeaders()["Content-Length"], "9", "real Content-Length")
    t.eq(h.getResponseHeaders()["Transfer-Encoding"], nil, "no Transfer-Encoding")
end)

t.test("responses are not mixed up when answered out of order", function()
    local results = {}
    t.with_listener(function()
        -- Hold the first two requests and answer them in reverse order.
        local held = {}
        while #held < 2 do
            local _, _, req, res = os.pullEvent("http_request")
            held[#held + 1] = { url = req.getURL(), res = res }
        end
        for i = 2, 1, -1 do
            held[i].res.write("for " .. held[i].url)
            held[i].res.close()
        end
        os.pullEvent("never_happens")
    end, function(base)
        local urls = { base .. "/first", base .. "/second" }
        http.request(urls[1])
        http.request(urls[2])
        for _ = 1, 50 do
            local ev, u, h = os.pullEvent()
            if ev == "http_success" then results[u:match("/%a+$")] = h.readAll() end
            if ev == "http_failure" then error("failure for " .. u .. ": " .. tostring(h)) end
            if results["/first"] and results["/second"] then break end
        end
    end)
    t.eq(results["/first"], "for /first", "first")
    t.eq(results["/second"], "for /second", "second")
end)

t.done()
