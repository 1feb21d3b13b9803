-- The `textutils` API (CC: Tweaked semantics): JSON, Lua-table serialisation, urlEncode.
local native, support = ...

local expect = support.expect
local type, pairs, ipairs, next, tostring, tonumber, error, pcall, setmetatable, load =
    type, pairs, ipairs, next, tostring, tonumber, error, pcall, setmetatable, load
local byte, char, format, sub, find, gsub, match =
    string.byte, string.char, string.format, string.sub, string.find, string.gsub, string.match
local concat, floor, huge = table.concat, math.floor, math.huge

local textutils = {}

-- Sentinels: immutable tables that serialise as `[]` and `null`.
local function sentinel(name)
    return setmetatable({}, {
        __newindex = function() error("attempt to mutate textutils." .. name, 2) end,
        __tostring = function() return "textutils." .. name end,
        __metatable = false,
    })
end
local empty_json_array = sentinel("empty_json_array")
local json_null = sentinel("json_null")
textutils.empty_json_array = empty_json_array
textutils.json_null = json_null

---------------------------------------------------------------------------------------------------
-- Shared helpers
---------------------------------------------------------------------------------------------------

-- UTF-8 encoding of a code point (no validation of surrogates: lone ones are kept as 3 bytes).
local function utf8_char(cp)
    if cp < 0x80 then return char(cp) end
    if cp < 0x800 then
        return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40)
    end
    if cp < 0x10000 then
        return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
    end
    return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
        0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

-- Marks `t` as being serialised; raises on recursion (or repetition unless allowed).
local function enter(tracking, t)
    local state = tracking[t]
    if state == true then error("Cannot serialize table with recursive entries", 0) end
    if state == false then error("Cannot serialize table with repeated entries", 0) end
    tracking[t] = true
end

local function leave(tracking, t, allow_repetitions)
    if allow_repetitions then tracking[t] = nil else tracking[t] = false end
end

---------------------------------------------------------------------------------------------------
-- serialize / unserialize (Lua-table form)
---------------------------------------------------------------------------------------------------

local lua_keywords = {}
for word in ([[and break do else elseif end false for function goto if in local nil not or
    repeat return then true until while]]):gmatch("%a+") do
    lua_keywords[word] = true
end

local function is_identifier(k)
    return type(k) == "string" and not lua_keywords[k] and find(k, "^[%a_][%w_]*$") ~= nil
end

local function lua_number(n)
    if n ~= n then return "0/0" end
    if n == huge then return "1/0" end
    if n == -huge then return "-1/0" end
    return tostring(n)
end

local function serialize_value(value, tracking, indent, opts)
    local kind = type(value)
    if kind == "table" then
        enter(tracking, value)
        local out
        if next(value) == nil then
            out = "{}"
        else
            local inner, open, comma, eq, lkey, rkey
            if opts.compact then
                inner, open, comma, eq, lkey, rkey = "", "{", ",", "=", "[", "]="
            else
                inner, open, comma, eq, lkey, rkey = indent .. "  ", "{\n", ",\n", " = ", "[ ", " ] = "
            end
            local parts, n = { open }, 1
            local in_sequence = {}
            for i, v in ipairs(value) do
                in_sequence[i] = true
                n = n + 1
                parts[n] = inner .. serialize_value(v, tracking, inner, opts) .. comma
            end
            for k, v in pairs(value) do
                if not in_sequence[k] then
                    local key
                    if is_identifier(k) then
                        key = k .. eq
                    else
                        key = lkey .. serialize_value(k, tracking, inner, opts) .. rkey
                    end
                    n = n + 1
                    parts[n] = inner .. key .. serialize_value(v, tracking, inner, opts) .. comma
                end
            end
            n = n + 1
            parts[n] = (opts.compact and "" or indent) .. "}"
            out = concat(parts)
        end
        leave(tracking, value, opts.allow_repetitions)
        return out
    elseif kind == "string" then
        return format("%q", value)
    elseif kind == "number" then
        return lua_number(value)
    elseif kind == "boolean" or kind == "nil" then
        return tostring(value)
    end
    error("Cannot serialize type " .. kind, 0)
end

function textutils.serialize(t, opts)
    expect(2, opts, "table", "nil")
    return serialize_value(t, {}, "", opts or {})
end
textutils.serialise = textutils.serialize

function textutils.unserialize(s)
    expect(1, s, "string")
    local fn = load("return " .. s, "unserialize", "t", {})
    if fn then
        local ok, result = pcall(fn)
        if ok then return result end
    end
    return nil
end
textutils.unserialise = textutils.unserialize

---------------------------------------------------------------------------------------------------
-- serializeJSON
---------------------------------------------------------------------------------------------------

local json_escapes = {
    ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
    ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_byte(c)
    return json_escapes[c] or format("\\u%04x", byte(c))
end

local function escape_code_point(cp)
    if cp < 0x10000 then return format("\\u%04x", cp) end
    cp = cp - 0x10000
    return format("\\u%04x\\u%04x", 0xD800 + floor(cp / 0x400), 0xDC00 + cp % 0x400)
end

-- Decodes `s` as UTF-8 into a list of code points; nil if it is not valid UTF-8.
local function utf8_code_points(s)
    local out, n, i, len = {}, 0, 1, #s
    while i <= len do
        local c = byte(s, i)
        local cp, extra, min
        if c < 0x80 then cp, extra, min = c, 0, 0
        elseif c >= 0xC2 and c < 0xE0 then cp, extra, min = c - 0xC0, 1, 0x80
        elseif c >= 0xE0 and c < 0xF0 then cp, extra, min = c - 0xE0, 2, 0x800
        elseif c >= 0xF0 and c < 0xF5 then cp, extra, min = c - 0xF0, 3, 0x10000
        else return nil end
        for j = 1, extra do
            local b = byte(s, i + j)
            if not b or b < 0x80 or b >= 0xC0 then return nil end
            cp = cp * 0x40 + (b - 0x80)
        end
        if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp < 0xE000) then return nil end
        n = n + 1
        out[n] = cp
        i = i + extra + 1
    end
    return out
end

local function json_string(s, unicode)
    if unicode and find(s, "[\128-\255]") then
        local points = utf8_code_points(s)
        if points then
            local parts = {}
            for i = 1, #points do
                local cp = points[i]
                if cp >= 0x80 then
                    parts[i] = escape_code_point(cp)
                else
                    local c = char(cp)
                    parts[i] = (json_escapes[c] or ((cp < 0x20 or cp == 0x7F) and format("\\u%04x", cp))) or c
                end
            end
            return '"' .. concat(parts) .. '"'
        end
        -- Not valid UTF-8: fall back to escaping byte by byte.
    end
    return '"' .. gsub(s, '[%c"\\\128-\255]', escape_byte) .. '"'
end

-- Integers without a fraction; other numbers in the shortest %g form that reads back exactly.
local function number_text(n)
    if n ~= n then error("Cannot serialize NaN", 0) end
    if n == huge or n == -huge then error("Cannot serialize infinity", 0) end
    if n == floor(n) and n > -2 ^ 53 and n < 2 ^ 53 then return format("%d", n) end
    for digits = 14, 16 do
        local text = format("%." .. digits .. "g", n)
        if tonumber(text) == n then return text end
    end
    return format("%.17g", n)
end

local function serialize_json(value, tracking, opts)
    if value == empty_json_array then return "[]" end
    if value == json_null then return "null" end
    local kind = type(value)
    if kind == "table" then
        enter(tracking, value)
        local out
        if next(value) == nil then
            out = "{}"
        else
            -- Array when every key is a positive integer (holes become null, as CC: Tweaked does);
            -- object otherwise.
            local count, largest, array = 0, 0, true
            for k in pairs(value) do
                local kt = type(k)
                if kt == "number" then
                    if k >= 1 and k == floor(k) and k < huge then
                        if k > largest then largest = k end
                    else
                        array = false
                    end
                elseif kt == "string" then
                    array = false
                else
                    error("Cannot serialize table key of type " .. kt, 0)
                end
                count = count + 1
            end
            -- Very sparse integer keys would explode into nulls: write them as an object instead.
            if array and largest > 2 * count + 16 then array = false end
            local parts = {}
            if array then
                for i = 1, largest do
                    local v = value[i]
                    if v == nil then parts[i] = "null" else parts[i] = serialize_json(v, tracking, opts) end
                end
                out = "[" .. concat(parts, ",") .. "]"
            else
                local n = 0
                for k, v in pairs(value) do
                    local key
                    if type(k) == "number" then key = number_text(k) else key = k end
                    if opts.nbt_style then
                        key = key .. ":"
                    else
                        key = json_string(key, opts.unicode_strings) .. ":"
                    end
                    n = n + 1
                    parts[n] = key .. serialize_json(v, tracking, opts)
                end
                out = "{" .. concat(parts, ",") .. "}"
            end
        end
        leave(tracking, value, opts.allow_repetitions)
        return out
    elseif kind == "string" then
        return json_string(value, opts.unicode_strings)
    elseif kind == "number" then
        return number_text(value)
    elseif kind == "boolean" then
        return tostring(value)
    elseif kind == "nil" then
        return "null"
    end
    error("Cannot serialize type " .. kind, 0)
end

function textutils.serializeJSON(value, options)
    expect(2, options, "table", "boolean", "nil")
    local opts
    if type(options) == "table" then
        opts = {
            nbt_style = options.nbt_style,
            unicode_strings = options.unicode_strings,
            allow_repetitions = options.allow_repetitions,
        }
    else
        opts = { unicode_strings = options == true }
    end
    return serialize_json(value, {}, opts)
end
textutils.serialiseJSON = textutils.serializeJSON

---------------------------------------------------------------------------------------------------
-- unserializeJSON: a strict recursive-descent parser
---------------------------------------------------------------------------------------------------

local PARSE_ERROR = {}

local function describe(str, pos)
    local c = sub(str, pos, pos)
    if c == "" then return "end of input" end
    return format("character %q", c)
end

local function fail(str, pos, msg)
    error({ PARSE_ERROR, format("Malformed JSON at position %d: %s", pos, msg) }, 0)
end

local function unexpected(str, pos, expected)
    local msg = "Unexpected " .. describe(str, pos)
    if expected then msg = msg .. ", expected " .. expected end
    fail(str, pos, msg .. ".")
end

local function skip_ws(str, pos)
    return (find(str, "[^ \t\r\n]", pos)) or #str + 1
end

local simple_escapes = {
    ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
}

local function parse_hex4(str, pos)
    local hex = match(str, "^%x%x%x%x", pos)
    if not hex then fail(str, pos, "Invalid \\u escape.") end
    return tonumber(hex, 16)
end

local function parse_string(str, pos)
    -- pos is just after the opening quote.
    local parts, n = {}, 0
    while true do
        local stop = find(str, '["\\%c]', pos)
        if not stop then fail(str, #str + 1, "Unexpected end of input in string.") end
        if stop > pos then
            n = n + 1
            parts[n] = sub(str, pos, stop - 1)
        end
        local c = sub(str, stop, stop)
        if c == '"' then
            return concat(parts), stop + 1
        elseif c == "\\" then
            local e = sub(str, stop + 1, stop + 1)
            if simple_escapes[e] then
                n = n + 1
                parts[n] = simple_escapes[e]
                pos = stop + 2
            elseif e == "u" then
                local cp = parse_hex4(str, stop + 2)
                pos = stop + 6
                if cp >= 0xD800 and cp < 0xDC00 and match(str, "^\\u[dD][c-fC-F]%x%x", pos) then
                    local low = parse_hex4(str, pos + 2)
                    cp = 0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00)
                    pos = pos + 6
                end
                n = n + 1
                parts[n] = utf8_char(cp)
            elseif e == "" then
                fail(str, stop + 1, "Unexpected end of input in string.")
            else
                fail(str, stop + 1, format("Invalid escape %q.", "\\" .. e))
            end
        elseif byte(c) == 0x7F then
            -- %c matches DEL, which JSON allows raw.
            n = n + 1
            parts[n] = c
            pos = stop + 1
        else
            fail(str, stop, "Unescaped control character in string.")
        end
    end
end

local function parse_number(str, pos, opts)
    local num = match(str, "^-?%d+", pos)
    if not num or match(num, "^-?0%d") then unexpected(str, pos, "a value") end
    local stop = pos + #num
    local frac = match(str, "^%.%d+", stop)
    if frac then
        stop = stop + #frac
    elseif sub(str, stop, stop) == "." then
        unexpected(str, stop + 1, "a digit")
    end
    local exp = match(str, "^[eE][+-]?%d+", stop)
    if exp then
        stop = stop + #exp
    elseif find(str, "^[eE]", stop) then
        fail(str, stop, "Malformed exponent.")
    end
    local text = sub(str, pos, stop - 1)
    if opts.nbt_style then
        local suffix = match(str, "^[bBsSlLfFdD]", stop)
        if suffix then stop = stop + 1 end
    end
    return tonumber(text), stop
end

local parse_value

local function parse_key(str, pos, opts)
    local c = sub(str, pos, pos)
    if c == '"' then return parse_string(str, pos + 1) end
    if opts.nbt_style then
        local key = match(str, "^[%w_%-%.%+]+", pos)
        if key then return key, pos + #key end
    end
    unexpected(str, pos, "a string key")
end

local function parse_array(str, pos, opts, depth)
    -- pos is just after `[`.
    local result, n = {}, 0
    pos = skip_ws(str, pos)
    if opts.nbt_style and find(str, "^[BIL];", pos) then pos = skip_ws(str, pos + 2) end
    if sub(str, pos, pos) == "]" then
        if opts.parse_empty_array then return empty_json_array, pos + 1 end
        return {}, pos + 1
    end
    while true do
        local v
        v, pos = parse_value(str, pos, opts, depth)
        n = n + 1
        result[n] = v
        pos = skip_ws(str, pos)
        local c = sub(str, pos, pos)
        if c == "]" then return result, pos + 1 end
        if c ~= "," then unexpected(str, pos, "',' or ']'") end
        pos = skip_ws(str, pos + 1)
    end
end

local function parse_object(str, pos, opts, depth)
    -- pos is just after `{`.
    local result = {}
    pos = skip_ws(str, pos)
    if sub(str, pos, pos) == "}" then return result, pos + 1 end
    while true do
        local key
        key, pos = parse_key(str, pos, opts)
        pos = skip_ws(str, pos)
        if sub(str, pos, pos) ~= ":" then unexpected(str, pos, "':'") end
        local v
        v, pos = parse_value(str, skip_ws(str, pos + 1), opts, depth)
        result[key] = v
        pos = skip_ws(str, pos)
        local c = sub(str, pos, pos)
        if c == "}" then return result, pos + 1 end
        if c ~= "," then unexpected(str, pos, "',' or '}'") end
        pos = skip_ws(str, pos + 1)
    end
end

local MAX_DEPTH = 150

function parse_value(str, pos, opts, depth)
    local c = sub(str, pos, pos)
    if c == "{" or c == "[" then
        if depth >= MAX_DEPTH then fail(str, pos, "Too deeply nested.") end
        if c == "{" then return parse_object(str, pos + 1, opts, depth + 1) end
        return parse_array(str, pos + 1, opts, depth + 1)
    elseif c == '"' then
        return parse_string(str, pos + 1)
    elseif c == "-" or find(c, "^%d") then
        return parse_number(str, pos, opts)
    elseif sub(str, pos, pos + 3) == "true" then
        return true, pos + 4
    elseif sub(str, pos, pos + 4) == "false" then
        return false, pos + 5
    elseif sub(str, pos, pos + 3) == "null" then
        if opts.parse_null then return json_null, pos + 4 end
        return nil, pos + 4
    elseif c == "" then
        fail(str, pos, "Unexpected end of input.")
    end
    unexpected(str, pos, "a value")
end

function textutils.unserializeJSON(s, options)
    expect(1, s, "string")
    expect(2, options, "table", "nil")
    local opts = { parse_empty_array = true }
    if options then
        opts.nbt_style = options.nbt_style
        opts.parse_null = options.parse_null
        if options.parse_empty_array == false then opts.parse_empty_array = false end
    end
    local ok, value, pos = pcall(function()
        local v, p = parse_value(s, skip_ws(s, 1), opts, 0)
        p = skip_ws(s, p)
        if p <= #s then unexpected(s, p, "end of input") end
        return v, p
    end)
    if ok then return value end
    if type(value) == "table" and value[1] == PARSE_ERROR then return nil, value[2] end
    -- Anything else (e.g. a stack overflow) is still reported, not raised.
    return nil, "Malformed JSON: " .. tostring(value)
end
textutils.unserialiseJSON = textutils.unserializeJSON

---------------------------------------------------------------------------------------------------
-- urlEncode, tokenise
---------------------------------------------------------------------------------------------------

local function percent(c)
    local b = byte(c)
    if b < 0x80 then return format("%%%02X", b) end
    -- CC: Tweaked treats bytes >= 0x80 as Latin-1 characters and percent-encodes their UTF-8 form.
    local u = utf8_char(b)
    return format("%%%02X%%%02X", byte(u, 1), byte(u, 2))
end

function textutils.urlEncode(str)
    expect(1, str, "string")
    str = gsub(str, "\n", "\r\n")
    str = gsub(str, "[^%w %-_%.]", percent)
    str = gsub(str, " ", "+")
    return str
end

-- Splits the arguments (joined with spaces) on whitespace; a double-quoted run is one token
-- (possibly empty), as CraftOS's shell tokeniser does.
function textutils.tokenise(...)
    local n = select("#", ...)
    local args = {}
    for i = 1, n do
        local a = select(i, ...)
        args[i] = expect(i, a, "string")
    end
    local line = concat(args, " ")
    local words, count = {}, 0
    local quoted = false
    for piece in (line .. '"'):gmatch('(.-)"') do
        if quoted then
            count = count + 1
            words[count] = piece
        else
            for word in piece:gmatch("[^ \t\r\n]+") do
                count = count + 1
                words[count] = word
            end
        end
        quoted = not quoted
    end
    return words
end
textutils.tokenize = textutils.tokenise

_G.textutils = textutils
