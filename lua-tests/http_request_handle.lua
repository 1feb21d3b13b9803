-- The request handle of an http_request event: URL, method, headers, reads, close.
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

local exchange = t.exchange

-- Sends one request (options table for http.get) and returns the response body.
local function fetch(opts)
    local h, e, fh = http.get(opts)
    if not h then error("request failed: " .. tostring(e), 2) end
    return h.readAll()
end

-- Records pcall results of a list of calls as "ok" or the error message.
local function outcome(fn, ...)
    local ok, e = pcall(fn, ...)
    return ok and "ok" or e
end

t.test("getURL returns the raw target: path plus query, not decoded", function()
    local urls = {}
    exchange(function(req, res)
        urls[#urls + 1] = req.getURL()
    end, function(base)
        fetch({ url = base .. "/a%20b?x=1&y=%2F" })
        fetch({ url = base .. "/" })
        fetch({ url = base })
        fetch({ url = base .. "/p/q+r/%E2%82%AC;s?&&#frag" })
        fetch({ url = base .. "?only=query" })
    end)
    t.eq(urls[1], "/a%20b?x=1&y=%2F", "encoded path and query")
    t.eq(urls[2], "/", "root")
    t.eq(urls[3], "/", "no path")
    t.eq(urls[4], "/p/q+r/%E2%82%AC;s?&&", "no fragment, nothing decoded")
    t.eq(urls[5], "/?only=query", "query only")
end)

t.test("getMethod returns the method as sent", function()
    local methods = {}
    exchange(function(req, res)
        methods[#methods + 1] = req.getMethod()
        res.write(req.getMethod())
    end, function(base)
        t.eq(fetch({ url = base .. "/get" }), "GET", "GET body")
        t.eq(t.ok(http.post(base .. "/post", "data"), "post").readAll(), "POST", "POST body")
        fetch({ url = base .. "/put", method = "PUT" })
        fetch({ url = base .. "/delete", method = "DELETE" })
        fetch({ url = base .. "/patch", method = "PATCH" })
        fetch({ url = base .. "/options", method = "OPTIONS" })
        fetch({ url = base .. "/brew", method = "BREW" })
        local h = t.ok(http.get({ url = base .. "/head", method = "HEAD" }), "head")
        t.eq(h.readAll(), "", "HEAD has no body")
    end)
    t.eq(table.concat(methods, ","), "GET,POST,PUT,DELETE,PATCH,OPTIONS,BREW,HEAD", "methods")
end)

t.test("getRequestHeaders keeps names as the client spelled them", function()
    local headers
    exchange(function(req)
        headers = req.getRequestHeaders()
    end, function(base, port)
        fetch({ url = base .. "/h", headers = {
            ["X-Custom-Header"] = "value one",
            ["x-lower"] = "two",
            ["ACCEPT"] = "text/plain",
        } })
        t.eq(headers["Host"], "127.0.0.1:" .. port, "Host")
    end)
    t.eq(type(headers), "table", "type")
    t.eq(headers["X-Custom-Header"], "value one", "X-Custom-Header")
    t.eq(headers["x-custom-header"], nil, "no lower-cased copy")
    t.eq(headers["x-lower"], "two", "x-lower")
    t.eq(headers["X-Lower"], nil, "no re-cased copy")
    t.eq(headers["ACCEPT"], "text/plain", "ACCEPT")
    t.eq(headers["Accept"], nil, "no Accept")
end)

t.test("two headers differing only in case stay separate keys", function()
    local headers
    exchange(function(req)
        headers = req.getRequestHeaders()
    end, function(base)
        fetch({ url = base .. "/dup", headers = { ["X-Dup"] = "1", ["x-dup"] = "2" } })
    end)
    t.eq(headers["X-Dup"], "1", "X-Dup")
    t.eq(headers["x-dup"], "2", "x-dup")
end)

t.test("getRequestHeaders includes Content-Length of a body and returns a fresh table", function()
    local h1, h2
    exchange(function(req)
        h1 = req.getRequestHeaders()
        h1["Content-Length"] = "changed"
        h1.extra = "x"
        h2 = req.getRequestHeaders()
    end, function(base)
        t.ok(http.post(base .. "/cl", "12345"), "post")
    end)
    t.ok(h1 ~= h2, "a new table each call")
    t.eq(h2["Content-Length"], "5", "Content-Length")
    t.eq(h2.extra, nil, "no leak between tables")
end)

t.test("read() reads one byte, read(n) n bytes, read(0) an empty string", function()
    local got = {}
    exchange(function(req)
        got[#got + 1] = req.read()
        got[#got + 1] = req.read(3)
        got[#got + 1] = req.read(0)
        got[#got + 1] = req.read(1)
        got[#got + 1] = req.read(100)
        got.after = table.pack(req.read())
        got.after0 = table.pack(req.read(0))
    end, function(base)
        t.ok(http.post(base .. "/r", "ABCDEFGHIJ"), "post")
    end)
    t.eq(got[1], "A", "read()")
    t.eq(got[2], "BCD", "read(3)")
    t.eq(got[3], "", "read(0)")
    t.eq(got[4], "E", "read(1)")
    t.eq(got[5], "FGHIJ", "read(100) gives the rest")
    t.eq(got.after.n, 1, "one value at the end")
    t.eq(got.after[1], nil, "read() at the end")
    t.eq(got.after0[1], nil, "read(0) at the end")
end)

t.test("read with a negative count raises", function()
    local err, next_byte
    exchange(function(req)
        err = outcome(req.read, -1)
        next_byte = req.read()
    end, function(base)
        t.ok(http.post(base .. "/neg", "xy"), "post")
    end)
    t.eq(err, "Cannot read a negative number of bytes", "error")
    t.eq(next_byte, "x", "nothing consumed")
end)

t.test("readLine strips \\n but keeps \\r, and returns nil at the end", function()
    local lines = {}
    exchange(function(req)
        for i = 1, 6 do lines[i] = req.readLine() end
    end, function(base)
        t.ok(http.post(base .. "/lines", "l1\r\nl2\n\nl4"), "post")
    end)
    t.eq(lines[1], "l1\r", "CRLF line keeps the \\r")
    t.eq(lines[2], "l2", "LF line")
    t.eq(lines[3], "", "empty line")
    t.eq(lines[4], "l4", "last line without newline")
    t.eq(lines[5], nil, "nil at the end")
    t.eq(lines[6], nil, "still nil")
end)

t.test("readLine(true) keeps the \\n", function()
    local lines = {}
    exchange(function(req)
        for i = 1, 4 do lines[i] = req.readLine(true) end
    end, function(base)
        t.ok(http.post(base .. "/lines", "l1\r\nl2\nl3"), "post")
    end)
    t.eq(lines[1], "l1\r\n", "CRLF")
    t.eq(lines[2], "l2\n", "LF")
    t.eq(lines[3], "l3", "last line")
    t.eq(lines[4], nil, "end")
end)

t.test("a body ending in \\n gives no extra empty line", function()
    local lines = {}
    exchange(function(req)
        for i = 1, 3 do lines[i] = req.readLine() end
    end, function(base)
        t.ok(http.post(base .. "/lines", "only\n"), "post")
    end)
    t.eq(lines[1], "only", "line")
    t.eq(lines[2], nil, "end")
end)

t.test("readAll returns the rest, then an empty string", function()
    local first, all, again
    exchange(function(req)
        first = req.read(2)
        all = req.readAll()
        again = req.readAll()
    end, function(base)
        t.ok(http.post(base .. "/all", "hello world"), "post")
    end)
    t.eq(first, "he", "prefix")
    t.eq(all, "llo world", "rest")
    t.eq(again, "", "readAll at the end")
end)

t.test("reads mix: read, readLine and readAll share one position", function()
    local a, b, c, d
    exchange(function(req)
        a = req.read()
        b = req.readLine()
        c = req.readLine(true)
        d = req.readAll()
    end, function(base)
        t.ok(http.post(base .. "/mix", "ab\r\ncd\nrest\nend"), "post")
    end)
    t.eq(a, "a", "read")
    t.eq(b, "b\r", "readLine")
    t.eq(c, "cd\n", "readLine(true)")
    t.eq(d, "rest\nend", "readAll")
end)

t.test("NUL bytes are kept by read, readLine and readAll", function()
    local r1, line, rest
    exchange(function(req)
        r1 = req.read()
        line = req.readLine()
        rest = req.readAll()
    end, function(base)
        t.ok(http.post(base .. "/nul", "\0a\0b\nc\0d\0"), "post")
    end)
    t.eq(r1, "\0", "read of a NUL byte")
    t.eq(line, "a\0b", "readLine")
    t.eq(rest, "c\0d\0", "readAll")
end)

t.test("all byte values survive the request body", function()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local body = table.concat(bytes):rep(4)
    local got
    exchange(function(req)
        got = req.readAll()
    end, function(base)
        t.ok(http.post(base .. "/bin", body, nil, true), "post")
    end)
    t.eq(#got, #body, "length")
    t.ok(got == body, "content")
end)

t.test("a large body arrives intact", function()
    local parts = {}
    for i = 1, 20000 do parts[i] = ("%05d"):format(i) end
    local body = table.concat(parts, ",")
    local got, len_header
    exchange(function(req, res)
        got = req.readAll()
        len_header = req.getRequestHeaders()["Content-Length"]
        res.write(#got)
    end, function(base)
        local h = t.ok(http.post(base .. "/big", body), "post")
        t.eq(h.readAll(), tostring(#body), "server's length")
    end)
    t.eq(len_header, tostring(#body), "Content-Length")
    t.ok(got == body, "content")
end)

t.test("a request without a body: readAll is \"\", read and readLine are nil", function()
    local all, r, line
    exchange(function(req)
        r = table.pack(req.read())
        line = table.pack(req.readLine())
        all = req.readAll()
    end, function(base)
        fetch({ url = base .. "/empty" })
    end)
    t.eq(r[1], nil, "read")
    t.eq(line[1], nil, "readLine")
    t.eq(all, "", "readAll")
end)

t.test("req.close() is a no-op: returns nothing, and the handle keeps working", function()
    local n, url_after, read_after, second
    exchange(function(req)
        n = select("#", req.close())
        url_after = req.getURL()
        read_after = req.readAll()
        second = outcome(req.close)
    end, function(base)
        t.ok(http.post(base .. "/closed-req", "still readable"), "post")
    end)
    t.eq(n, 0, "values returned")
    t.eq(url_after, "/closed-req", "getURL after close")
    t.eq(read_after, "still readable", "readAll after close")
    t.eq(second, "ok", "second close")
end)

t.test("after res.close() every request method raises 'attempt to use a closed file'", function()
    local results
    exchange(function(req, res)
        res.close()
        results = {
            getURL = outcome(req.getURL),
            getMethod = outcome(req.getMethod),
            getRequestHeaders = outcome(req.getRequestHeaders),
            read = outcome(req.read),
            read5 = outcome(req.read, 5),
            readLine = outcome(req.readLine),
            readAll = outcome(req.readAll),
        }
    end, function(base)
        t.ok(http.post(base .. "/after", "unread body"), "post")
    end)
    for _, k in ipairs({ "getURL", "getMethod", "getRequestHeaders", "read", "read5", "readLine", "readAll" }) do
        t.eq(results[k], "attempt to use a closed file", k)
    end
end)

t.test("req.close() after res.close() still does not raise", function()
    local r
    exchange(function(req, res)
        res.close()
        r = outcome(req.close)
    end, function(base)
        fetch({ url = base .. "/" })
    end)
    t.eq(r, "ok", "req.close")
end)

t.test("the colon form works on the request handle", function()
    local u, m, hdr, b1, line, rest
    exchange(function(req)
        u = req:getURL()
        m = req:getMethod()
        hdr = req:getRequestHeaders()["X-Colon"]
        b1 = req:read(2)
        line = req:readLine(true)
        rest = req:readAll()
        req:close()
    end, function(base)
        t.ok(http.post(base .. "/colon?x", "abcd\nef", { ["X-Colon"] = "yes" }), "post")
    end)
    t.eq(u, "/colon?x", "getURL")
    t.eq(m, "POST", "getMethod")
    t.eq(hdr, "yes", "header")
    t.eq(b1, "ab", "read(2)")
    t.eq(line, "cd\n", "readLine(true)")
    t.eq(rest, "ef", "readAll")
end)

t.test("the request handle is a plain table with exactly the documented methods", function()
    local keys, mt
    exchange(function(req)
        mt = getmetatable(req)
        keys = {}
        for k, v in pairs(req) do keys[#keys + 1] = k .. ":" .. type(v) end
        table.sort(keys)
    end, function(base)
        fetch({ url = base .. "/" })
    end)
    t.eq(mt, nil, "metatable")
    t.eq(table.concat(keys, ","),
        "close:function,getMethod:function,getRequestHeaders:function,getURL:function,"
            .. "read:function,readAll:function,readLine:function", "keys")
end)

t.test("request handles are distinct per request", function()
    local seen = {}
    exchange(function(req)
        seen[#seen + 1] = { req = req, url = req.getURL() }
    end, function(base)
        fetch({ url = base .. "/1" })
        fetch({ url = base .. "/2" })
    end)
    t.ok(seen[1].req ~= seen[2].req, "different tables")
    t.eq(seen[1].url, "/1", "first")
    t.eq(seen[2].url, "/2", "second")
end)

t.done()
