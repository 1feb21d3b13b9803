-- NodeMCU's `sjson` module over CraftOS's JSON code (`textutils.serializeJSON` and
-- `textutils.unserializeJSON`), with the firmware's rules:
--
-- encode(table[, opts]) takes a table (an error otherwise). A table whose keys are all positive
-- integers is an array, its holes written as null; an empty table is `[]`; any other table is an
-- object, its number keys written as strings. sjson.NULL, any userdata, and the string
-- `opts.null` are written as null. A function is called (with no arguments) and its result
-- written in its place. Nesting deeper than `opts.depth` (default 20, 4 to 1000) is an error.
--
-- decode(str[, opts]) takes a JSON object or array (anything else is an error, as is invalid
-- JSON) and ignores what follows it. null decodes to sjson.NULL; given `opts`, to `opts.null`
-- (so to nil, an absent field, when `opts` has no `null`). `opts.metatable` is set on every
-- table made, its `__newindex` seeing every field set and its `checkpath(table, path)` able to
-- refuse a table, as the firmware documents.
--
-- Differences from the firmware:
-- * sjson.NULL is a unique, read-only table (`tostring` gives "sjson.NULL"), not a userdata:
--   compare values with `== sjson.NULL`, as scripts do.
-- * Text is valid JSON: backslashes are escaped (the firmware writes them raw), non-ASCII text
--   is written as \u escapes (same meaning), NaN and infinities are errors (the firmware writes
--   `nan`/`inf`), and an array too sparse to write as one (a largest key above twice the number
--   of keys plus 16, which could exhaust memory) is written as an object.
-- * An object's fields reach `__newindex` in no particular order (the firmware: text order),
--   each table is set in its parent once it is filled (the firmware: before), and nothing
--   inside a table `checkpath` refused is looked at.
-- * Nesting deeper than 150 levels is refused by the JSON parser whatever `opts.depth` says.
-- * sjson.encoder builds the whole text at its first `read`; sjson.decoder keeps the pieces it
--   is given and parses them once the closing bracket of the value has arrived, so an error
--   inside the value is raised by that `write` (text that cannot start an object or an array is
--   refused at once, as on the firmware).
local native, support, loop = ...

local textutils = textutils
local serialize, unserialize = textutils.serializeJSON, textutils.unserializeJSON
local json_null, empty_array = textutils.json_null, textutils.empty_json_array
local expect = support.expect
local type, error, pcall, pairs, next, tostring, tonumber, setmetatable =
    type, error, pcall, pairs, next, tostring, tonumber, setmetatable
local floor, huge = math.floor, math.huge
local find, sub, byte, concat = string.find, string.sub, string.byte, table.concat

local sjson = {}

local NULL = setmetatable({}, {
    __newindex = function() error("attempt to modify sjson.NULL", 2) end,
    __tostring = function() return "sjson.NULL" end,
    __metatable = false,
})
sjson.NULL = NULL

local DEFAULT_DEPTH = 20

local function depth_of(opts)
    local depth = type(opts) == "table" and tonumber(opts.depth) or 0
    if depth == 0 then return DEFAULT_DEPTH end
    return depth < 4 and 4 or depth > 1000 and 1000 or floor(depth)
end

-------------------------------------------------------------------------------------------------
-- encode
-------------------------------------------------------------------------------------------------

-- `value` made ready for serializeJSON: nulls as textutils.json_null, empty arrays as
-- textutils.empty_json_array, arrays without holes, object keys as strings.
local function prepare(value, ctx, level)
    for _ = 1, 10 do
        if type(value) ~= "function" then break end
        value = value()
    end
    local kind = type(value)
    if value == nil or value == NULL or value == json_null or kind == "userdata"
        or (kind == "string" and value == ctx.null) then
        return json_null
    elseif kind == "string" or kind == "boolean" then
        return value
    elseif kind == "number" then
        if value ~= value then error("sjson.encode: cannot encode NaN", 0) end
        if value == huge or value == -huge then error("sjson.encode: cannot encode infinity", 0) end
        return value
    elseif kind ~= "table" then
        error("sjson.encode: cannot encode a " .. kind, 0)
    end
    if value == empty_array then return empty_array end
    if level > ctx.depth then
        error("sjson.encode: tables nested deeper than " .. ctx.depth .. " levels", 0)
    end
    local largest, count = 0, 0
    for k in pairs(value) do
        if type(k) ~= "number" or k < 1 or k ~= floor(k) or k == huge then
            largest = nil
            break
        end
        count = count + 1
        if k > largest then largest = k end
    end
    local out = {}
    if largest == 0 then
        return empty_array
    elseif largest and largest <= 2 * count + 16 then
        for i = 1, largest do out[i] = prepare(value[i], ctx, level + 1) end
    else
        for k, v in pairs(value) do
            local kt = type(k)
            if kt ~= "string" and kt ~= "number" then
                error("sjson.encode: cannot encode a key of type " .. kt, 0)
            end
            out[tostring(k)] = prepare(v, ctx, level + 1)
        end
    end
    return out
end

local function encode(value, opts)
    local ctx = { depth = depth_of(opts), null = opts and opts.null }
    return serialize(prepare(value, ctx, 1), { unicode_strings = true })
end

function sjson.encode(value, opts)
    expect(1, value, "table")
    expect(2, opts, "table", "nil")
    return encode(value, opts)
end

-- encoder(table[, opts]): an object whose read([size]) returns the text in pieces of up to
-- `size` bytes (default 1024), then nil.
function sjson.encoder(value, opts)
    expect(1, value, "table")
    expect(2, opts, "table", "nil")
    local text, pos = nil, 0
    local encoder = {}
    function encoder.read(self, size)
        if type(self) ~= "table" then size = self end -- encoder.read(n) as well as encoder:read(n)
        size = type(size) == "number" and size >= 1 and floor(size) or 1024
        text = text or encode(value, opts)
        if pos >= #text then return nil end
        pos = pos + size
        return sub(text, pos - size + 1, pos)
    end
    return loop.not_provided(encoder, "sjson.encoder")
end

-------------------------------------------------------------------------------------------------
-- decode
-------------------------------------------------------------------------------------------------

-- Copies `path` (keys from the root) for a checkpath call.
local function copy(path, n)
    local out = {}
    for i = 1, n do out[i] = path[i] end
    return out
end

-- The script's value for the decoded `v` (a textutils value): nulls replaced, tables made anew
-- with the options' metatable. Second result true for a table `checkpath` refused.
local function build(v, ctx, path, n)
    if v == json_null then return ctx.null end
    if type(v) ~= "table" then return v end
    if n >= ctx.depth then error("JSON parse error: nested deeper than " .. ctx.depth .. " levels", 0) end
    local t = {}
    if ctx.metatable then
        setmetatable(t, ctx.metatable)
        if ctx.checkpath and not ctx.checkpath(t, copy(path, n)) then return nil, true end
    end
    local function set(k, child)
        path[n + 1] = k
        local value, refused = build(child, ctx, path, n + 1)
        if not refused then t[k] = value end -- through the metatable's __newindex, if any
    end
    -- JSON object keys are strings, array keys numbers: an array's first key is a number.
    if type(next(v)) == "number" then
        for i = 1, #v do set(i, v[i]) end
    else
        for k, child in pairs(v) do set(k, child) end
    end
    path[n + 1] = nil
    return t
end

local function decode_text(text, ctx)
    local value, err = unserialize(text, { parse_null = true, parse_empty_array = false })
    if err then error("JSON parse error: " .. err, 0) end
    return build(value, ctx, {}, 0)
end

local function options(opts)
    local ctx = { depth = depth_of(opts), null = NULL }
    if opts then
        ctx.null = opts.null
        if type(opts.metatable) == "table" then
            ctx.metatable, ctx.checkpath = opts.metatable, opts.metatable.checkpath
        end
    end
    return ctx
end

-- Finds where the JSON object or array fed to scanner `st` in pieces ends: returns the index in
-- `piece` of its closing bracket, or nil while it is still open. Only brackets and strings are
-- followed; the parser checks the rest.
local function scan(st, piece)
    local i, n = 1, #piece
    if st.escaped and n > 0 then i, st.escaped = 2, false end
    while i <= n do
        if st.in_string then
            local j = find(piece, '["\\]', i)
            if not j then return nil end
            if byte(piece, j) == 34 then
                st.in_string, i = false, j + 1
            elseif j == n then
                st.escaped = true
                return nil
            else
                i = j + 2
            end
        elseif st.depth == 0 then
            local j = find(piece, "[^ \t\r\n]", i)
            if not j then return nil end
            local c = sub(piece, j, j)
            if c ~= "{" and c ~= "[" then
                error(("JSON parse error: expected an object or an array, got %q"):format(c), 0)
            end
            st.depth, i = 1, j + 1
        else
            local j = find(piece, '[%[%]{}"]', i)
            if not j then return nil end
            local c = sub(piece, j, j)
            if c == '"' then
                st.in_string = true
            elseif c == "{" or c == "[" then
                st.depth = st.depth + 1
            else
                st.depth = st.depth - 1
                if st.depth == 0 then return j end
            end
            i = j + 1
        end
    end
    return nil
end

function sjson.decode(str, opts)
    expect(1, str, "string")
    expect(2, opts, "table", "nil")
    local st = { depth = 0 }
    local stop = scan(st, str)
    if not stop then
        error(st.depth == 0 and "JSON parse error: no JSON text" or "JSON parse error: unexpected end", 0)
    end
    return decode_text(sub(str, 1, stop), options(opts))
end

-- decoder([opts]): an object whose write(piece) takes the text in pieces and returns the value
-- once it is complete (nil before), and whose result() returns it (an error before).
function sjson.decoder(opts)
    expect(1, opts, "table", "nil")
    local ctx, st, pieces = options(opts), { depth = 0 }, {}
    local complete, failed, result = false, false, nil
    local decoder = {}
    function decoder.write(self, piece)
        if type(self) ~= "table" then piece = self end -- decoder.write(s) as well as decoder:write(s)
        expect(1, piece, "string")
        if failed then error("JSON parse error: previous call", 0) end
        if complete then return result end
        local ok, stop = pcall(scan, st, piece)
        if ok and not stop then
            pieces[#pieces + 1] = piece
            return nil
        end
        local value
        if ok then
            pieces[#pieces + 1] = sub(piece, 1, stop)
            ok, value = pcall(decode_text, concat(pieces), ctx)
        else
            value = stop
        end
        pieces = nil
        if not ok then
            failed = true
            error(value, 0)
        end
        complete, result = true, value
        return result
    end
    function decoder.result()
        if not complete then error("sjson.decoder: decode not complete", 2) end
        return result
    end
    return loop.not_provided(decoder, "sjson.decoder")
end

return loop.not_provided(sjson, "sjson")
