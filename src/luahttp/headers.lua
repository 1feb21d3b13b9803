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

-- Fields live in the object itself, three slots each: self[3i-2] = name, self[3i-1] = value,
-- self[3i] = never_index, for i = 1 .. self._count. One table per headers object, and lookups
-- scan (a request has a handful of fields): building one per request is cheap.

local function new()
    -- Room for two fields from the start (a response's `:status` and one more) saves the
    -- table's first resizes.
    return setmetatable({ nil, nil, nil, nil, nil, nil, _count = 0 }, mt)
end

-- Builds headers from a flat list {name, value, name, value, ...} of `count` pairs without
-- checks (for ccserve's own request heads, whose names and values are already strings).
local function from_list(list, count, h)
    h = h or new()
    local n = h._count
    local j = 3 * n
    for k = 1, 2 * count, 2 do
        local name = list[k]
        h[j + 1], h[j + 2], h[j + 3] = name, list[k + 1], secret[name] or false
        j = j + 3
    end
    h._count = n + count
    return h
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
    for k = 1, 3 * self._count do copy[k] = self[k] end
    copy._count = self._count
    return copy
end

--- Adds a field at the end.
function methods:append(name, value, never_index)
    -- The checks and the flag inline (one of the hottest calls of a lua-http handler).
    if type(name) ~= "string" then check_name("append", name) end
    if type(value) ~= "string" then value = check_value("append", value) end
    local flag
    if never_index == nil then
        flag = secret[name] or false
    else
        flag = not not never_index
    end
    local count = self._count
    local j = 3 * count
    self[j + 1], self[j + 2], self[j + 3] = name, value, flag
    self._count = count + 1
end

--- Iterator over every field in order: name, value, never_index.
function methods:each()
    local i = 0
    return function(h)
        if i >= h._count then return nil end
        i = i + 1
        local j = 3 * i
        return h[j - 2], h[j - 1], h[j]
    end, self
end
mt.__pairs = methods.each

--- True if a field of that name exists.
function methods:has(name)
    for j = 1, 3 * self._count, 3 do
        if self[j] == name then return true end
    end
    return false
end

--- Removes every field of that name; true if there was one.
function methods:delete(name)
    local count, kept, found = self._count, 0, false
    for i = 1, count do
        local j = 3 * i
        if self[j - 2] == name then
            found = true
        else
            local k = 3 * kept
            self[k + 1], self[k + 2], self[k + 3] = self[j - 2], self[j - 1], self[j]
            kept = kept + 1
        end
    end
    for k = 3 * kept + 1, 3 * count do self[k] = nil end
    self._count = kept
    return found
end

--- The i-th field as name, value, never_index (nil if there is none).
function methods:geti(i)
    if type(i) ~= "number" or i < 1 or i > self._count or i % 1 ~= 0 then return nil end
    local j = 3 * i
    return self[j - 2], self[j - 1], self[j]
end

--- Every value of that name, in order, as a sequence with its length in `.n`.
function methods:get_as_sequence(name)
    local out, n = {}, 0
    for j = 1, 3 * self._count, 3 do
        if self[j] == name then
            n = n + 1
            out[n] = self[j + 1]
        end
    end
    out.n = n
    return out
end

--- Every value of that name as multiple results; no results at all when it is missing.
function methods:get(name)
    -- The common case, one field of that name, without a table.
    local first, j, last = nil, 1, 3 * self._count
    while j <= last do
        if self[j] == name then
            first = j
            break
        end
        j = j + 3
    end
    if not first then return end
    for k = first + 3, last, 3 do
        if self[k] == name then
            local values = self:get_as_sequence(name)
            return unpack(values, 1, values.n)
        end
    end
    return self[first + 1]
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
    if type(i) ~= "number" or i < 1 or i > self._count or i % 1 ~= 0 then
        error("invalid index", 2)
    end
    local j = 3 * i
    self[j - 1] = check_value("modifyi", value)
    self[j] = flag_for(self[j - 2], never_index)
end

--- Replaces the only field of that name, or appends one. A name with several fields is an error.
function methods:upsert(name, value, never_index)
    check_name("upsert", name)
    value = check_value("upsert", value)
    local found
    for j = 1, 3 * self._count, 3 do
        if self[j] == name then
            if found then error("Cannot upsert multi-valued field", 2) end
            found = j
        end
    end
    if not found then
        local j = 3 * self._count
        self[j + 1], self[j + 2], self[j + 3] = name, value, flag_for(name, never_index)
        self._count = self._count + 1
        return
    end
    self[found + 1] = value
    self[found + 2] = flag_for(name, never_index)
end

--- Sorts in place: pseudo-headers first, then by name, then value, then never_index (true first);
--- fields equal in all three keep their order.
function methods:sort()
    local keyed = {}
    for i = 1, self._count do
        local j = 3 * i
        keyed[i] = { self[j - 2], self[j - 1], self[j], i }
    end
    table.sort(keyed, function(a, b)
        if a[1] ~= b[1] then
            local pa, pb = a[1]:sub(1, 1) == ":", b[1]:sub(1, 1) == ":"
            if pa ~= pb then return pa end
            return a[1] < b[1]
        end
        if a[2] ~= b[2] then return a[2] < b[2] end
        if a[3] ~= b[3] then return a[3] end
        return a[4] < b[4]
    end)
    for i = 1, self._count do
        local j, f = 3 * i, keyed[i]
        self[j - 2], self[j - 1], self[j] = f[1], f[2], f[3]
    end
end

--- Writes one "prefix name: value" line per field to `file` (default io.stderr), then flushes.
function methods:dump(file, prefix)
    file = file or io.stderr
    prefix = prefix or ""
    for i = 1, self._count do
        local j = 3 * i
        assert(file:write(("%s%s: %s\n"):format(prefix, self[j - 2], self[j - 1])))
    end
    assert(file:flush())
end

return {
    new = new,
    _from_list = from_list,
    methods = methods,
    mt = mt,
}
