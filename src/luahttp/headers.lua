-- http.headers: lua-http 0.4's header list. An ordered list of fields, each a name, a value and a
-- never_index flag (true for values that must not be cached by a compressor, e.g. credentials),
-- plus an index from name to positions, so a name may appear any number of times.
-- Request and status lines travel as pseudo-headers (":method", ":path", ":authority",
-- ":scheme", ":status"): ordinary fields whose names start with ':'. Names are kept exactly as
-- given and compared exactly (lua-http's convention is lower case; it does not enforce it).
-- Written for ccserve from lua-http's documentation; no lua-http code is used.

local unpack = table.unpack or unpack

local methods = {}
local mt = { __name = "http.headers", __index = methods }

-- Fields whose never_index flag is true unless the caller passes one.
local secret = {
    authorization = true,
    ["proxy-authorization"] = true,
    cookie = true,
    ["set-cookie"] = true,
}

-- Argument checks. `level` 3 blames the caller of the method that called the check.
local function check_name(fname, name)
    if type(name) ~= "string" then
        error(("bad argument #1 to '%s' (string expected, got %s)"):format(fname, type(name)), 3)
    end
end

local function check_value(fname, value)
    local kind = type(value)
    if kind == "string" then return value end
    if kind == "number" then return tostring(value) end
    error(("bad argument #2 to '%s' (string expected, got %s)"):format(fname, kind), 3)
end

local function flag_for(name, never_index)
    if never_index == nil then return secret[name] or false end
    return not not never_index
end

-- self._fields[i] = { name, value, never_index }; self._where[name] = { i1, i2, ... } ascending.
local function reindex(self)
    local where = {}
    for i = 1, self._count do
        local name = self._fields[i][1]
        local list = where[name]
        if list then list[#list + 1] = i else where[name] = { i } end
    end
    self._where = where
end

local function new()
    return setmetatable({ _count = 0, _fields = {}, _where = {} }, mt)
end

--- Number of fields (also `#headers`).
function methods:len()
    return self._count
end
mt.__len = methods.len

function mt:__tostring()
    return ("http.headers{%d headers}"):format(self._count)
end

--- An independent copy.
function methods:clone()
    local copy = new()
    for i = 1, self._count do
        local f = self._fields[i]
        copy._fields[i] = { f[1], f[2], f[3] }
    end
    copy._count = self._count
    reindex(copy)
    return copy
end

--- Adds a field at the end.
function methods:append(name, value, never_index)
    check_name("append", name)
    value = check_value("append", value)
    local i = self._count + 1
    self._fields[i] = { name, value, flag_for(name, never_index) }
    self._count = i
    local list = self._where[name]
    if list then list[#list + 1] = i else self._where[name] = { i } end
end

--- Iterator over every field in order: name, value, never_index.
function methods:each()
    local i = 0
    return function(h)
        if i >= h._count then return nil end
        i = i + 1
        local f = h._fields[i]
        return f[1], f[2], f[3]
    end, self
end
mt.__pairs = methods.each

--- True if a field of that name exists.
function methods:has(name)
    return self._where[name] ~= nil
end

--- Removes every field of that name; true if there was one.
function methods:delete(name)
    local list = self._where[name]
    if not list then return false end
    local kept, n = {}, 0
    for i = 1, self._count do
        local f = self._fields[i]
        if f[1] ~= name then
            n = n + 1
            kept[n] = f
        end
    end
    self._fields, self._count = kept, n
    reindex(self)
    return true
end

--- The i-th field as name, value, never_index (nil if there is none).
function methods:geti(i)
    local f = self._fields[i]
    if f == nil then return nil end
    return f[1], f[2], f[3]
end

--- Every value of that name, in order, as a sequence with its length in `.n`.
function methods:get_as_sequence(name)
    local list = self._where[name]
    local out = { n = 0 }
    if list then
        for k = 1, #list do out[k] = self._fields[list[k]][2] end
        out.n = #list
    end
    return out
end

--- Every value of that name as multiple results; no results at all when it is missing.
function methods:get(name)
    local values = self:get_as_sequence(name)
    return unpack(values, 1, values.n)
end

--- Every value of that name joined with ","; nil when it is missing.
function methods:get_comma_separated(name)
    local values = self:get_as_sequence(name)
    if values.n == 0 then return nil end
    return table.concat(values, ",", 1, values.n)
end

-- Splits a list-valued field on commas outside double quotes, trimming spaces and tabs and
-- dropping empty elements (RFC 7230 section 7).
local function split_list(text, out)
    local item, quoted, escaped = {}, false, false
    local function finish()
        local s = table.concat(item):match("^[ \t]*(.-)[ \t]*$")
        if s ~= "" then
            out.n = out.n + 1
            out[out.n] = s
        end
        item = {}
    end
    for c in text:gmatch(".") do
        if c == "," and not quoted then
            finish()
        else
            item[#item + 1] = c
            if escaped then
                escaped = false
            elseif quoted and c == "\\" then
                escaped = true
            elseif c == '"' then
                quoted = not quoted
            end
        end
    end
    finish()
end

--- Every element of a comma-separated field, across all its values, as a sequence with `.n`.
--- (Not in lua-http 0.4, which dropped it; kept for older scripts.)
function methods:get_split_as_sequence(name)
    local out = { n = 0 }
    local values = self:get_as_sequence(name)
    for k = 1, values.n do split_list(values[k], out) end
    return out
end

--- Replaces the i-th field's value and never_index flag; raises "invalid index" if there is none.
function methods:modifyi(i, value, never_index)
    local f = self._fields[i]
    if f == nil then error("invalid index", 2) end
    f[2] = check_value("modifyi", value)
    f[3] = flag_for(f[1], never_index)
end

--- Replaces the only field of that name, or appends one. A name with several fields is an error.
function methods:upsert(name, value, never_index)
    check_name("upsert", name)
    value = check_value("upsert", value)
    local list = self._where[name]
    if list == nil then
        return self:append(name, value, never_index)
    end
    if #list > 1 then error("Cannot upsert multi-valued field", 2) end
    local f = self._fields[list[1]]
    f[2] = value
    f[3] = flag_for(name, never_index)
end

--- Sorts in place: pseudo-headers first, then by name, then value, then never_index (true first);
--- fields equal in all three keep their order.
function methods:sort()
    local keyed = {}
    for i = 1, self._count do keyed[i] = { field = self._fields[i], pos = i } end
    table.sort(keyed, function(a, b)
        local fa, fb = a.field, b.field
        if fa[1] ~= fb[1] then
            local pa, pb = fa[1]:sub(1, 1) == ":", fb[1]:sub(1, 1) == ":"
            if pa ~= pb then return pa end
            return fa[1] < fb[1]
        end
        if fa[2] ~= fb[2] then return fa[2] < fb[2] end
        if fa[3] ~= fb[3] then return fa[3] end
        return a.pos < b.pos
    end)
    for i = 1, self._count do self._fields[i] = keyed[i].field end
    reindex(self)
end

--- Writes one "prefix name: value" line per field to `file` (default io.stderr), then flushes.
function methods:dump(file, prefix)
    file = file or io.stderr
    prefix = prefix or ""
    for i = 1, self._count do
        local f = self._fields[i]
        assert(file:write(("%s%s: %s\n"):format(prefix, f[1], f[2])))
    end
    assert(file:flush())
end

return {
    new = new,
    methods = methods,
    mt = mt,
}
