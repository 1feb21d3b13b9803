-- textutils: JSON, Lua-table serialisation, urlEncode, tokenise (CC: Tweaked semantics).
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

local sj, uj = textutils.serializeJSON, textutils.unserializeJSON

-- Deep equality for round trips.
local function deep_eq(a, b)
    if a == b then return true end
    if type(a) ~= "table" or type(b) ~= "table" then return false end
    for k, v in pairs(a) do
        if not deep_eq(v, b[k]) then return false end
    end
    for k in pairs(b) do
        if a[k] == nil then return false end
    end
    return true
end

local function same(actual, expected, what)
    if not deep_eq(actual, expected) then
        error((what or "value") .. ": tables differ (got " .. textutils.serialize(actual, { compact = true })
            .. ")", 2)
    end
end

-- Returns the nil-and-message pair of a failed parse, failing if the parse succeeded.
local function parse_fails(s, opts)
    local v, msg = uj(s, opts)
    t.eq(v, nil, "result of " .. s)
    t.eq(type(msg), "string", "message type for " .. s)
    return msg
end

-- serializeJSON -----------------------------------------------------------------------------------

t.test("every name exists, British and American spellings are the same function", function()
    for _, pair in ipairs({
        { "serializeJSON", "serialiseJSON" }, { "unserializeJSON", "unserialiseJSON" },
        { "serialize", "serialise" }, { "unserialize", "unserialise" }, { "tokenize", "tokenise" },
    }) do
        t.eq(type(textutils[pair[1]]), "function", pair[1])
        t.eq(textutils[pair[1]], textutils[pair[2]], pair[2])
    end
    t.eq(type(textutils.urlEncode), "function", "urlEncode")
end)

t.test("serializeJSON scalars", function()
    t.eq(sj(true), "true", "true")
    t.eq(sj(false), "false", "false")
    t.eq(sj("hi"), '"hi"', "string")
    t.eq(sj(""), '""', "empty string")
    t.eq(sj(nil), "null", "nil")
    t.eq(sj(textutils.json_null), "null", "json_null")
end)

t.test("serializeJSON numbers: integers without .0, fractions exact", function()
    t.eq(sj(5), "5", "5")
    t.eq(sj(10 / 2), "5", "10/2")
    t.eq(sj(-3), "-3", "-3")
    t.eq(sj(0), "0", "0")
    t.eq(sj(1.5), "1.5", "1.5")
    t.eq(sj(0.1), "0.1", "0.1")
    t.eq(sj(-0.25), "-0.25", "-0.25")
    t.eq(tonumber(sj(1 / 3)), 1 / 3, "1/3 reads back exactly")
    t.eq(tonumber(sj(1e300)), 1e300, "1e300 reads back")
    t.eq(sj(2 ^ 31), "2147483648", "2^31")
end)

t.test("serializeJSON rejects NaN and infinity", function()
    t.raises("Cannot serialize NaN", sj, 0 / 0)
    t.raises("Cannot serialize infinity", sj, math.huge)
    t.raises("Cannot serialize infinity", sj, { -math.huge })
end)

t.test("serializeJSON arrays and objects", function()
    t.eq(sj({ 1, 2, 3 }), "[1,2,3]", "array")
    t.eq(sj({ "a", { true, false } }), '["a",[true,false]]', "nested array")
    t.eq(sj({ a = 1 }), '{"a":1}', "object")
    t.eq(sj({ a = { b = { c = "d" } } }), '{"a":{"b":{"c":"d"}}}', "nested object")
    t.eq(sj({ list = { 1 } }), '{"list":[1]}', "array in object")
    local s = sj({ x = 1, y = 2 })
    t.ok(s == '{"x":1,"y":2}' or s == '{"y":2,"x":1}', "two keys: " .. s)
end)

t.test("serializeJSON empty tables and sentinels", function()
    t.eq(sj({}), "{}", "empty plain table")
    t.eq(sj(textutils.empty_json_array), "[]", "empty_json_array")
    t.eq(sj({ a = textutils.empty_json_array, b = textutils.json_null }) == '{"a":[],"b":null}'
        or sj({ a = textutils.empty_json_array, b = textutils.json_null }) == '{"b":null,"a":[]}', true,
        "sentinels inside an object")
    t.eq(sj({ textutils.json_null, 1 }), "[null,1]", "json_null in an array")
end)

t.test("sentinels are distinct and immutable", function()
    t.ok(textutils.empty_json_array ~= textutils.json_null, "distinct")
    t.eq(next(textutils.empty_json_array), nil, "empty")
    t.ok(not pcall(function() textutils.empty_json_array[1] = 1 end), "empty_json_array is read-only")
    t.ok(not pcall(function() textutils.json_null.x = 1 end), "json_null is read-only")
    t.eq(next(textutils.empty_json_array), nil, "still empty")
end)

t.test("serializeJSON array holes become null; mixed tables become objects", function()
    t.eq(sj({ 1, nil, 3 }), "[1,null,3]", "hole")
    local mixed = sj({ 1, a = 2 })
    t.ok(mixed == '{"1":1,"a":2}' or mixed == '{"a":2,"1":1}', "mixed: " .. mixed)
    t.eq(sj({ [0] = "z" }), '{"0":"z"}', "zero key")
    t.eq(sj({ [1.5] = true }), '{"1.5":true}', "fractional key")
end)

t.test("serializeJSON string escapes", function()
    t.eq(sj('a"b'), '"a\\"b"', "quote")
    t.eq(sj("a\\b"), '"a\\\\b"', "backslash")
    t.eq(sj("a\nb\tc\rd"), '"a\\nb\\tc\\rd"', "newline tab cr")
    t.eq(sj("\b\f"), '"\\b\\f"', "backspace formfeed")
    t.eq(sj("\0\1\31"), '"\\u0000\\u0001\\u001f"', "other control characters")
    t.eq(sj("a/b"), '"a/b"', "slash not escaped")
    t.eq(sj({ ['k"'] = 1 }), '{"k\\"":1}', "escaped key")
end)

t.test("serializeJSON escapes bytes >= 0x80 one by one by default", function()
    t.eq(sj("\233"), '"\\u00e9"', "latin-1 byte")
    t.eq(sj("caf\195\169"), '"caf\\u00c3\\u00a9"', "utf-8 bytes escaped per byte")
end)

t.test("serializeJSON unicode_strings option and legacy boolean", function()
    t.eq(sj("caf\195\169", { unicode_strings = true }), '"caf\\u00e9"', "é")
    t.eq(sj("caf\195\169", true), '"caf\\u00e9"', "boolean form")
    t.eq(sj("\226\130\172", true), '"\\u20ac"', "euro sign")
    t.eq(sj("\240\159\152\128", true), '"\\ud83d\\ude00"', "astral: surrogate pair")
    t.eq(sj("a\n", true), '"a\\n"', "ascii escapes still apply")
    t.eq(sj("caf\195\169", false), '"caf\\u00c3\\u00a9"', "false keeps byte mode")
end)

t.test("serializeJSON nbt_style writes bare keys", function()
    t.eq(sj({ a = 1 }, { nbt_style = true }), "{a:1}", "bare key")
end)

t.test("serializeJSON errors: functions, bad keys, recursion", function()
    t.raises("Cannot serialize type function", sj, print)
    t.raises("Cannot serialize type function", sj, { f = print })
    t.raises("Cannot serialize type thread", sj, coroutine.create(print))
    t.raises_match("Cannot serialize", sj, { [true] = 1 })
    local a = {}
    a.self = a
    t.raises("Cannot serialize table with recursive entries", sj, a)
    local b = { {} }
    b[1][1] = b
    t.raises("Cannot serialize table with recursive entries", sj, b)
end)

t.test("serializeJSON repeated tables need allow_repetitions", function()
    local shared = { 1 }
    local v = { shared, shared }
    t.raises("Cannot serialize table with repeated entries", sj, v)
    t.eq(sj(v, { allow_repetitions = true }), "[[1],[1]]", "allowed")
    local a = {}
    a[1] = a
    t.raises("Cannot serialize table with recursive entries", sj, a, { allow_repetitions = true })
end)

t.test("serializeJSON argument check", function()
    t.raises_match("bad argument #2 %(table or boolean expected, got string%)", sj, {}, "x")
    local ok, err = pcall(function() textutils.serializeJSON({}, "x") end)
    t.eq(ok, false, "raised")
    t.ok(err:find("bad argument #2 to 'serializeJSON' (table or boolean expected, got string)", 1, true),
        "named error: " .. tostring(err))
end)

-- unserializeJSON ---------------------------------------------------------------------------------

t.test("unserializeJSON scalars", function()
    t.eq(uj("true"), true, "true")
    t.eq(uj("false"), false, "false")
    t.eq(uj("42"), 42, "integer")
    t.eq(uj("-1.5e2"), -150, "exponent")
    t.eq(uj("0.25"), 0.25, "fraction")
    t.eq(uj("1E+2"), 100, "capital exponent")
    t.eq(uj('"hi"'), "hi", "string")
    t.eq(uj("  \n\t 7 \r\n"), 7, "whitespace around")
    local v, msg = uj("null")
    t.eq(v, nil, "null")
    t.eq(msg, nil, "null is not an error")
end)

t.test("unserializeJSON arrays and objects", function()
    same(uj("[1, 2, 3]"), { 1, 2, 3 }, "array")
    same(uj('{"a": 1, "b": [true, {"c": "d"}]}'), { a = 1, b = { true, { c = "d" } } }, "nested")
    same(uj('{ }'), {}, "empty object")
    same(uj('{"a":1,"a":2}'), { a = 2 }, "duplicate key: last wins")
    same(uj('[[[]]]'), { { textutils.empty_json_array } }, "nested empty")
end)

t.test("unserializeJSON string escapes", function()
    t.eq(uj([["a\"b\\c\/d\n\t\r\b\f"]]), "a\"b\\c/d\n\t\r\b\f", "simple escapes")
    t.eq(uj([["\u0041"]]), "A", "\\u ASCII")
    t.eq(uj([["\u00e9"]]), "\195\169", "\\u to UTF-8 (2 bytes)")
    t.eq(uj([["\u20AC"]]), "\226\130\172", "\\u to UTF-8 (3 bytes)")
    t.eq(uj([["\ud83d\ude00"]]), "\240\159\152\128", "surrogate pair")
    t.eq(uj('"caf\195\169"'), "caf\195\169", "raw UTF-8 kept")
end)

t.test("unserializeJSON empty arrays", function()
    t.eq(uj("[]"), textutils.empty_json_array, "default: sentinel")
    t.eq(uj("[ ]", { parse_empty_array = true }), textutils.empty_json_array, "explicit true")
    local v = uj("[]", { parse_empty_array = false })
    t.eq(type(v), "table", "plain table")
    t.ok(v ~= textutils.empty_json_array, "not the sentinel")
    t.eq(next(v), nil, "empty")
end)

t.test("unserializeJSON parse_null", function()
    t.eq(uj("null", { parse_null = true }), textutils.json_null, "top level")
    local v = uj('{"a":null,"b":[null,1]}', { parse_null = true })
    t.eq(v.a, textutils.json_null, "in object")
    t.eq(v.b[1], textutils.json_null, "in array")
    local w = uj('{"a":null,"b":[null,1]}')
    t.eq(w.a, nil, "default: nil in object")
    t.eq(w.b[2], 1, "array index kept after nil")
end)

t.test("unserializeJSON nbt_style", function()
    same(uj("{a:1b,b:2.5f,c:[I;1,2],d:\"x\"}", { nbt_style = true }), { a = 1, b = 2.5, c = { 1, 2 }, d = "x" },
        "nbt")
    parse_fails("{a:1}")
end)

t.test("unserializeJSON bad and empty input returns nil, message", function()
    for _, bad in ipairs({
        "", "   ", "[1,2", "[1,]", "{\"a\":}", "{\"a\" 1}", "{a:1}", "[1 2]", "tru", "nul", "01",
        "1.", ".5", "-", "+1", "1e", "\"abc", "\"\\x\"", "\"\\u12\"", "[1]]", "{} x", "'a'",
        "\"a\nb\"", "{\"a\":1,}", "NaN", "Infinity", "[", "{",
    }) do
        parse_fails(bad)
    end
end)

t.test("unserializeJSON error messages describe the position", function()
    local msg = parse_fails("[1, x]")
    t.ok(msg:find("position 5", 1, true), "position in: " .. msg)
    t.ok(msg:find("Unexpected character", 1, true), "wording in: " .. msg)
    msg = parse_fails("")
    t.ok(msg:find("end of input", 1, true), "empty input: " .. msg)
    msg = parse_fails("[1,2")
    t.ok(msg:find("end of input", 1, true), "truncated: " .. msg)
end)

t.test("unserializeJSON argument checks raise", function()
    t.raises_match("bad argument #1 .*string expected, got nil", uj)
    t.raises_match("bad argument #2 .*table expected, got number", uj, "1", 5)
end)

t.test("unserializeJSON deep nesting does not raise", function()
    local v, msg = uj(string.rep("[", 100000))
    t.eq(v, nil, "result")
    t.eq(type(msg), "string", "message")
    same(uj(string.rep("[", 50) .. "1" .. string.rep("]", 50)) ~= nil, true, "moderate nesting parses")
end)

t.test("JSON round trips", function()
    local values = {
        { 1, 2, 3 },
        { name = "ccserve", tags = { "a", "b" }, nested = { deep = { x = 1.25, y = false } } },
        { s = "quotes \" and \\ and \n and \0 and \127" },
        { list = { { id = 1 }, { id = 2 } } },
        "plain",
        -12345,
    }
    for i, v in ipairs(values) do
        same(uj(sj(v)), v, "round trip " .. i)
    end
    local utf = "h\195\169llo \226\130\172 \240\159\152\128"
    t.eq(uj(sj(utf, true)), utf, "unicode round trip")
    t.eq(sj(uj('{"a":[]}')), '{"a":[]}', "empty array survives both ways")
    t.eq(sj(uj('[null,1]', { parse_null = true })), "[null,1]", "null survives with parse_null")
end)

-- serialize / unserialize -------------------------------------------------------------------------

local ser, unser = textutils.serialize, textutils.unserialize

t.test("serialize scalars", function()
    t.eq(ser(1), "1", "number")
    t.eq(ser("a\"b"), '"a\\"b"', "string")
    t.eq(ser(true), "true", "boolean")
    t.eq(ser(nil), "nil", "nil")
    t.eq(ser(0 / 0), "0/0", "nan")
    t.eq(ser(math.huge), "1/0", "inf")
    t.eq(ser(-math.huge), "-1/0", "-inf")
end)

t.test("serialize tables: pretty by default", function()
    t.eq(ser({}), "{}", "empty")
    t.eq(ser({ 1, 2 }), "{\n  1,\n  2,\n}", "array")
    t.eq(ser({ a = 1 }), "{\n  a = 1,\n}", "identifier key")
    t.eq(ser({ ["a b"] = 1 }), '{\n  [ "a b" ] = 1,\n}', "non-identifier key")
    t.eq(ser({ ["end"] = 1 }), '{\n  [ "end" ] = 1,\n}', "keyword key")
    t.eq(ser({ [10] = true }), "{\n  [ 10 ] = true,\n}", "numeric key")
    t.eq(ser({ a = { b = 1 } }), "{\n  a = {\n    b = 1,\n  },\n}", "nested indentation")
end)

t.test("serialize compact option", function()
    t.eq(ser({ 1, 2 }, { compact = true }), "{1,2,}", "array")
    t.eq(ser({ a = { b = 1 } }, { compact = true }), "{a={b=1,},}", "nested")
    t.eq(ser({ ["a b"] = 1 }, { compact = true }), '{["a b"]=1,}', "bracketed key")
end)

t.test("serialize errors", function()
    local a = {}
    a.a = a
    t.raises("Cannot serialize table with recursive entries", ser, a)
    t.raises("Cannot serialize type function", ser, { print })
    t.raises("Cannot serialize type function", ser, print)
    local shared = {}
    t.raises("Cannot serialize table with repeated entries", ser, { shared, shared })
    t.eq(ser({ shared, shared }, { allow_repetitions = true, compact = true }), "{{},{},}", "allowed")
    t.raises_match("bad argument #2 .*table expected, got string", ser, {}, "compact")
end)

t.test("unserialize", function()
    t.eq(unser("1"), 1, "number")
    t.eq(unser('"x"'), "x", "string")
    same(unser("{ a = 1, 2, [\"b c\"] = { true } }"), { 2, a = 1, ["b c"] = { true } }, "table")
    t.eq(unser("{"), nil, "syntax error gives nil")
    t.eq(unser("os.exit()"), nil, "no globals in the environment")
    t.eq(unser("print"), nil, "print is not visible")
    t.eq(unser("1/0"), math.huge, "inf")
    t.raises_match("bad argument #1 .*string expected, got nil", unser)
end)

t.test("serialize round trips", function()
    local values = {
        { 1, 2, 3, n = 3 },
        { a = { b = { c = "d\n\"e\"\0" } }, [5] = false, [1.5] = "x", ["with space"] = {} },
        "line1\nline2",
        { nan = 0 / 0 ~= 0 / 0, inf = math.huge },
    }
    for i, v in ipairs(values) do
        same(unser(ser(v)), v, "pretty " .. i)
        same(unser(ser(v, { compact = true })), v, "compact " .. i)
    end
    local nan = unser(ser(0 / 0))
    t.ok(nan ~= nan, "NaN round trip")
end)

-- urlEncode / tokenise ----------------------------------------------------------------------------

t.test("urlEncode", function()
    t.eq(textutils.urlEncode("abcXYZ019-_."), "abcXYZ019-_.", "unreserved kept")
    t.eq(textutils.urlEncode("a b"), "a+b", "space")
    t.eq(textutils.urlEncode("a&b=c/d?e"), "a%26b%3Dc%2Fd%3Fe", "reserved")
    t.eq(textutils.urlEncode("~+%"), "%7E%2B%25", "tilde plus percent")
    t.eq(textutils.urlEncode("a\nb"), "a%0D%0Ab", "newline becomes CRLF")
    t.eq(textutils.urlEncode("\233"), "%C3%A9", "byte >= 0x80 as its UTF-8 form")
    t.eq(textutils.urlEncode(""), "", "empty")
    t.raises_match("bad argument #1 .*string expected, got number", textutils.urlEncode, 1)
end)

t.test("tokenise", function()
    same(textutils.tokenise("a b  c"), { "a", "b", "c" }, "spaces")
    same(textutils.tokenise("  lead\ttab  "), { "lead", "tab" }, "tabs and edges")
    same(textutils.tokenise('say "hello world" now'), { "say", "hello world", "now" }, "quoted")
    same(textutils.tokenise('x ""'), { "x", "" }, "empty quoted")
    same(textutils.tokenise("a", "b c"), { "a", "b", "c" }, "several arguments")
    same(textutils.tokenise(""), {}, "empty")
    same(textutils.tokenize('"unterminated here'), { "unterminated here" }, "unterminated quote")
end)

t.done()
