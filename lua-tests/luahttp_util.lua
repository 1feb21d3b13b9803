-- http.util (lua-http 0.4's helpers): URI coding, query strings, paths, authorities, dates,
-- quoting, yieldable_pcall.
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

local util = require "http.util"

local function pack(...) return { n = select("#", ...), ... } end

-- Every byte 0..255, in order.
local all_bytes do
    local b = {}
    for i = 0, 255 do b[#b + 1] = string.char(i) end
    all_bytes = table.concat(b)
end

-- Collects query_args' pairs as "name=value" strings ("name" alone for a nil value).
local function args(query)
    local out = {}
    for name, value in util.query_args(query) do
        out[#out + 1] = value == nil and name or name .. "=" .. value
    end
    return table.concat(out, "|")
end

t.test("every function and table is exported", function()
    t.eq(require "http.util", util, "second require")
    for _, name in ipairs({ "encodeURI", "encodeURIComponent", "decodeURI", "decodeURIComponent",
        "query_args", "dict_to_query", "resolve_relative_path", "is_safe_method", "is_ip",
        "split_authority", "to_authority", "imf_date", "maybe_quote", "yieldable_pcall" }) do
        t.eq(type(util[name]), "function", name)
    end
    t.eq(type(util.scheme_to_port), "table", "scheme_to_port")
end)

-- URI coding --------------------------------------------------------------------------------------

t.test("encodeURIComponent keeps only letters, digits and -_.!~*'()", function()
    t.eq(util.encodeURIComponent("AZaz09-_.!~*'()"), "AZaz09-_.!~*'()", "unreserved")
    t.eq(util.encodeURIComponent(";,/?:@&=+$# %\"<>[]{}|\\^`"),
        "%3B%2C%2F%3F%3A%40%26%3D%2B%24%23%20%25%22%3C%3E%5B%5D%7B%7D%7C%5C%5E%60", "reserved")
    t.eq(util.encodeURIComponent("λ"), "%CE%BB", "UTF-8 bytes, upper-case hex")
    t.eq(util.encodeURIComponent("\0\255\n"), "%00%FF%0A", "control and high bytes")
    t.eq(util.encodeURIComponent(""), "", "empty")
    t.eq(util.encodeURIComponent(12), "12", "a number")
    t.eq(select("#", util.encodeURIComponent("a b")), 1, "one result")
end)

t.test("encodeURI also keeps the delimiters ;,/?:@&=+$#", function()
    t.eq(util.encodeURI("http://u@h:80/p;x?a=1&b=+$,#f"), "http://u@h:80/p;x?a=1&b=+$,#f", "delimiters")
    t.eq(util.encodeURI("/a b/ü\"<>%"), "/a%20b/%C3%BC%22%3C%3E%25", "others")
    t.eq(util.encodeURI("-_.!~*'()"), "-_.!~*'()", "marks")
end)

t.test("decodeURIComponent decodes every %XX; malformed % and + stay", function()
    t.eq(util.decodeURIComponent("a%20b%2Fc%3f%CE%BB"), "a b/c?λ", "upper and lower hex")
    t.eq(util.decodeURIComponent("100%"), "100%", "% at the end")
    t.eq(util.decodeURIComponent("%4"), "%4", "one digit")
    t.eq(util.decodeURIComponent("%zz%4g%%41"), "%zz%4g%A", "non-hex")
    t.eq(util.decodeURIComponent("a+b"), "a+b", "+ is not a space")
    t.eq(util.decodeURIComponent("%00"), "\0", "NUL")
    t.eq(util.decodeURIComponent(util.encodeURIComponent(all_bytes)), all_bytes, "round trip of all bytes")
    t.eq(util.decodeURIComponent(util.encodeURI(all_bytes)), all_bytes, "encodeURI round trip")
end)

t.test("decodeURI leaves the escapes of #$&+,/:;=?@ encoded", function()
    t.eq(util.decodeURI("Encoded%20string"), "Encoded string", "space")
    t.eq(util.decodeURI("%24"), "%24", "$ stays")
    local s = util.encodeURIComponent("#$&+,/:;=?@")
    t.eq(util.decodeURI(s), s, "all structural bytes stay")
    t.eq(util.decodeURI("%2f%2F%41%c3%a9"), "%2f%2FAé", "case kept for kept escapes")
    t.eq(util.decodeURI("%%%"), "%%%", "malformed")
end)

t.test("coding functions reject non-strings clearly", function()
    for _, name in ipairs({ "encodeURI", "encodeURIComponent", "decodeURI", "decodeURIComponent" }) do
        t.raises_match("bad argument #1 to '" .. name .. "' %(string expected, got nil%)", util[name])
    end
end)

-- Query strings -----------------------------------------------------------------------------------

t.test("query_args yields decoded pairs in order, duplicates included", function()
    t.eq(args("foo=bar"), "foo=bar", "one")
    t.eq(args("foo=bar&baz=qux&foo=somethingelse"), "foo=bar|baz=qux|foo=somethingelse", "three")
    t.eq(args("%3D=%26"), "==&", "escaped = and &")
    t.eq(args("a=%CE%BB&%C3%A9=1"), "a=λ|é=1", "UTF-8")
    t.eq(args(""), "", "empty")
end)

t.test("query_args: no '=' gives a nil value, '=' with nothing gives ''", function()
    local got = {}
    for name, value in util.query_args("foo=bar&noequals&empty=") do got[#got + 1] = { name, value } end
    t.eq(#got, 3, "count")
    t.eq(got[2][1], "noequals", "name")
    t.eq(got[2][2], nil, "nil value")
    t.eq(got[3][2], "", "empty value")
end)

t.test("query_args: + is kept (lua-http does not decode it), malformed % kept, extra = in value", function()
    t.eq(args("q=a+b&x=%2B"), "q=a+b|x=+", "plus")
    t.eq(args("p=100%&q=%zz&r=%4"), "p=100%|q=%zz|r=%4", "malformed")
    t.eq(args("a==b=c"), "a==b=c", "value keeps '='")
end)

t.test("query_args skips empty pairs and pairs without a name", function()
    t.eq(args("&&a=1&&b=2&"), "a=1|b=2", "empty pairs")
    t.eq(args("=x&a=1&=&b"), "a=1|b", "nameless")
end)

t.test("query_args works with the iterator protocol directly", function()
    local iter, state, first = util.query_args("a=1&b=2")
    t.eq(table.concat(pack(iter(state, first)), ","), "a,1", "first")
    t.eq(table.concat(pack(iter(state, first)), ","), "b,2", "second")
    t.eq(iter(state, first), nil, "end")
    t.eq(iter(state, first), nil, "stays ended")
end)

t.test("dict_to_query encodes names and values, sorted by name, and round-trips", function()
    t.eq(util.dict_to_query({}), "", "empty")
    t.eq(util.dict_to_query({ foo = "bar" }), "foo=bar", "one")
    t.eq(util.dict_to_query({ foo = "λ" }), "foo=%CE%BB", "UTF-8")
    t.eq(util.dict_to_query({ foo = "bar", baz = "qux" }), "baz=qux&foo=bar", "sorted (as documented)")
    t.eq(util.dict_to_query({ ["a b"] = "1&2=3", n = 5 }), "a%20b=1%262%3D3&n=5", "escapes; numbers")
    local d = { x = "a+b c", ["&"] = "=", y = "" }
    local back = {}
    for k, v in util.query_args(util.dict_to_query(d)) do back[k] = v end
    for k, v in pairs(d) do t.eq(back[k], v, "round trip of " .. k) end
    t.raises_match("bad argument #1 to 'dict_to_query' %(table expected, got string%)", util.dict_to_query, "a=b")
end)

-- Paths -------------------------------------------------------------------------------------------

t.test("resolve_relative_path against a base path's directory", function()
    local r = util.resolve_relative_path
    t.eq(r("/a/b/c", "d"), "/a/b/d", "sibling")
    t.eq(r("/a/b/", "d"), "/a/b/d", "directory base")
    t.eq(r("/a/b/c", "./d"), "/a/b/d", ".")
    t.eq(r("/a/b/c", "../d"), "/a/d", "..")
    t.eq(r("/a/b/c", "../../../../d"), "/d", ".. never goes above the root")
    t.eq(r("/a/b/c", "x/./y/../z"), "/a/b/x/z", "mixed")
    t.eq(r("/a/b/c", "/x/../y"), "/y", "absolute relative path ignores the base")
    t.eq(r("/a/b/c", "d/"), "/a/b/d/", "trailing / kept")
    t.eq(r("/a/b/c", "//d//e"), "/d/e", "empty segments dropped")
    t.eq(r("/a/b/c", ".."), "/a", "bare ..")
    t.eq(r("/a/b/c", ""), "/a/b", "empty relative path: the directory")
    t.eq(r("/a", "../.."), "/", "up to the root")
    t.eq(r("/a", "../../"), "/", "root with trailing /")
    t.eq(r("a/b", "c"), "a/c", "relative base stays relative")
    t.eq(r("a/b", "../.."), "", "relative base, all removed")
    t.raises_match("bad argument #2 to 'resolve_relative_path'", r, "/a", nil)
end)

-- Methods, addresses, authorities -----------------------------------------------------------------

t.test("is_safe_method: GET, HEAD, OPTIONS, TRACE only (case-sensitive)", function()
    for _, m in ipairs({ "GET", "HEAD", "OPTIONS", "TRACE" }) do t.eq(util.is_safe_method(m), true, m) end
    for _, m in ipairs({ "POST", "PUT", "DELETE", "PATCH", "CONNECT", "get", "" }) do
        t.eq(util.is_safe_method(m), false, m)
    end
    t.eq(util.is_safe_method(nil), false, "nil")
end)

t.test("is_ip: IPv4", function()
    for _, s in ipairs({ "0.0.0.0", "127.0.0.1", "255.255.255.255", "1.2.3.4", "10.0.0.09", "199.249.250.1" }) do
        t.eq(util.is_ip(s), true, s)
    end
    for _, s in ipairs({ "256.0.0.1", "1.2.3", "1.2.3.4.5", "1.2.3.4 ", "001.2.3.4", "1..3.4", "a.b.c.d",
        "1.2.3.-4", "", "300.1.1.1", "1.2.3.1000" }) do
        t.eq(util.is_ip(s), false, s)
    end
end)

t.test("is_ip: IPv6, with embedded IPv4 and RFC 6874 zones", function()
    for _, s in ipairs({ "::", "::1", "1::", "fe80::1", "2001:db8::8a2e:370:7334", "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "::ffff:192.0.2.1", "1:2:3:4:5:6:1.2.3.4", "ABCD::ef",
        "fe80::1%25eth0", "fe80::1%25en%2F1" }) do
        t.eq(util.is_ip(s), true, s)
    end
    for _, s in ipairs({ ":::", "1:::2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::",
        "::g", "[::1]", ":1", "1:", "1:2:3:4:5:6:7:8::", "1.2.3.4::", "::1%25", "::1%eth0",
        "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3" }) do
        t.eq(util.is_ip(s), false, s)
    end
    t.eq(util.is_ip(nil), false, "nil")
    t.eq(util.is_ip("example.com"), false, "a name")
end)

t.test("scheme_to_port", function()
    t.eq(util.scheme_to_port.http, 80, "http")
    t.eq(util.scheme_to_port.ws, 80, "ws")
    t.eq(util.scheme_to_port.https, 443, "https")
    t.eq(util.scheme_to_port.wss, 443, "wss")
    t.eq(util.scheme_to_port.ftp, nil, "ftp")
end)

t.test("split_authority: host and numeric port, default ports, IPv6 brackets", function()
    local function split(...) return table.concat(pack(util.split_authority(...)), " ") end
    t.eq(split("example.com", "http"), "example.com 80", "default http")
    t.eq(split("example.com", "https"), "example.com 443", "default https")
    t.eq(split("example.com:8000", "http"), "example.com 8000", "explicit")
    t.eq(split("localhost:08000", "ws"), "localhost 8000", "decimal")
    t.eq(split("example.com:8000", "madeup"), "example.com 8000", "unknown scheme, port given")
    t.eq(split("[::1]", "https"), "::1 443", "IPv6 default")
    t.eq(split("[::1]:80", "https"), "::1 80", "IPv6 with port")
    t.eq(split("[fe80::1%25eth0]:81", "http"), "fe80::1%25eth0 81", "IPv6 zone")
    t.eq(split(" example.com:81\t", "http"), "example.com 81", "whitespace")
    t.eq(select(2, util.split_authority("example.com:8000", "http")), 8000, "a number")
    local host, err = util.split_authority("example.com", "madeupscheme")
    t.eq(host, nil, "unknown scheme")
    t.eq(err, "unknown scheme", "message")
    t.eq(util.split_authority("example.com", nil), nil, "no scheme")
    t.eq(util.split_authority("example.com:", "http"), "example.com:", "empty port is part of the host")
end)

t.test("to_authority: brackets IPv6, leaves out default ports", function()
    t.eq(util.to_authority("example.com", 80, "http"), "example.com", "default")
    t.eq(util.to_authority("example.com", 8000, "http"), "example.com:8000", "other port")
    t.eq(util.to_authority("example.com", 443, "http"), "example.com:443", "other scheme's default")
    t.eq(util.to_authority("example.com", 443, "wss"), "example.com", "wss default")
    t.eq(util.to_authority("example.com", 80, nil), "example.com:80", "no scheme")
    t.eq(util.to_authority("example.com", nil, "http"), "example.com", "no port")
    t.eq(util.to_authority("::1", 443, "https"), "[::1]", "IPv6 default")
    t.eq(util.to_authority("::1", 8000, "https"), "[::1]:8000", "IPv6 port")
    t.eq(util.to_authority("127.0.0.1", 8080, "http"), "127.0.0.1:8080", "IPv4")
    t.eq(util.to_authority("h", "8080", "http"), "h:8080", "port as a string")
    t.raises_match("bad argument #2 to 'to_authority'", util.to_authority, "h", "x", "http")
    for _, a in ipairs({ "example.com:8000", "[::1]:8000", "[::1]", "h" }) do
        t.eq(util.to_authority(util.split_authority(a, "https"), select(2, util.split_authority(a, "https")),
            "https"), a == "[::1]" and "[::1]" or a, "round trip " .. a)
    end
end)

-- Dates, quoting, pcall ---------------------------------------------------------------------------

t.test("imf_date formats RFC 7231 dates", function()
    t.eq(util.imf_date(1234567890), "Fri, 13 Feb 2009 23:31:30 GMT", "fixed time")
    t.eq(util.imf_date(0), "Thu, 01 Jan 1970 00:00:00 GMT", "epoch")
    t.eq(util.imf_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT", "RFC 7231's example")
    t.eq(util.imf_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT", "leap day")
    t.eq(util.imf_date(1234567890.9), "Fri, 13 Feb 2009 23:31:30 GMT", "fraction dropped")
    t.raises_match("bad argument #1 to 'imf_date' %(number expected, got string%)", util.imf_date, "x")
end)

t.test("imf_date defaults to the current time", function()
    local now = util.imf_date()
    t.ok(now:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"), "format: " .. now)
    local secs = math.floor(os.epoch("utc") / 1000)
    local ok = false
    for d = -2, 2 do ok = ok or util.imf_date(secs + d) == now end
    t.ok(ok, "within 2 s of os.epoch('utc'): " .. now)
end)

t.test("maybe_quote: tokens as they are, otherwise a quoted-string, nil if impossible", function()
    t.eq(util.maybe_quote("foo"), "foo", "token")
    t.eq(util.maybe_quote("!#$%&'*+-.^_`|~09AZaz"), "!#$%&'*+-.^_`|~09AZaz", "every token char")
    t.eq(util.maybe_quote([[with " quote]]), [["with \" quote"]], "quote escaped")
    t.eq(util.maybe_quote([[back\slash]]), [["back\\slash"]], "backslash escaped")
    t.eq(util.maybe_quote("a b"), [["a b"]], "space")
    t.eq(util.maybe_quote("a,b;c=d"), [["a,b;c=d"]], "separators")
    t.eq(util.maybe_quote("tab\there"), "\"tab\there\"", "tab allowed")
    t.eq(util.maybe_quote("λ"), "\"λ\"", "obs-text allowed")
    t.eq(util.maybe_quote(""), '""', "empty")
    for i = 0, 31 do
        if i ~= 9 then t.eq(util.maybe_quote("a" .. string.char(i)), nil, "control " .. i) end
    end
    t.eq(util.maybe_quote("\127"), nil, "DEL")
    t.eq(select("#", util.maybe_quote("a b")), 1, "one result")
end)

t.test("yieldable_pcall: results, errors, error objects, __call, yields across it", function()
    local r = pack(util.yieldable_pcall(function() return 1, nil, 3 end))
    t.eq(r.n, 4, "count")
    t.eq(r[1], true, "ok")
    t.eq(r[4], 3, "last")
    t.eq(util.yieldable_pcall(error), false, "protects")
    local obj = {}
    local ok, err = util.yieldable_pcall(error, obj)
    t.eq(ok, false, "error object: ok")
    t.eq(err, obj, "error object itself")
    local called = false
    util.yieldable_pcall(setmetatable({}, { __call = function() called = true end }))
    t.ok(called, "__call object")
    local co = coroutine.wrap(function()
        return util.yieldable_pcall(function(x) return coroutine.yield(x) + 1 end, 41)
    end)
    t.eq(co(), 41, "yielded out")
    local ok2, v = co(1)
    t.eq(ok2, true, "resumed")
    t.eq(v, 2, "result after resume")
end)

t.done()
