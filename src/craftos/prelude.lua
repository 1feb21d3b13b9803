-- ccserve prelude: helpers shared by the Lua halves of the APIs, and Lua 5.1 names CraftOS keeps.
-- Receives the error sentinel native functions return before a message to raise.
local ERR = ...

local type, select, error, pcall = type, select, error, pcall
local getinfo = debug and debug.getinfo

-- Raise `msg` as a plain string (level 0: no position, like CraftOS-PC's native errors) when a
-- native function returned (ERR, msg); otherwise pass its results through unchanged.
local function ret(...)
    if (...) == ERR then error((select(2, ...)), 0) end
    return ...
end

-- A public function around a native one.
local function wrap(f)
    return function(...) return ret(f(...)) end
end

-- A handle method around a native one taking the handle's userdata first. Accepts both
-- `handle.method(x)` and `handle:method(x)`: no method takes a table, so a leading table is the
-- handle itself (or a copy of it).
local function method(f, ud)
    return function(...)
        if type((...)) == "table" then return ret(f(ud, select(2, ...))) end
        return ret(f(ud, ...))
    end
end

-- cc.expect: `bad argument #1 to 'name' (number expected, got nil)`.
local function expect(index, value, ...)
    local t = type(value)
    local n = select("#", ...)
    for i = 1, n do
        if t == select(i, ...) then return value end
    end
    local names = {}
    for i = 1, n do
        local name = select(i, ...)
        if name ~= "nil" then names[#names + 1] = name end
    end
    local type_names
    if #names <= 1 then
        type_names = names[1] or "nil"
    else
        type_names = table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]
    end
    local name
    if getinfo then
        local ok, info = pcall(getinfo, 3, "nS")
        if ok and info and info.name and info.name ~= "" and info.what ~= "C" then name = info.name end
    end
    if name then
        error(("bad argument #%d to '%s' (%s expected, got %s)"):format(index, name, type_names, t), 3)
    end
    error(("bad argument #%d (%s expected, got %s)"):format(index, type_names, t), 3)
end

-- Why a response header field cannot be sent: "name" (not a token) or "value" (it holds CR,
-- LF or NUL, which would end the line early or shift the fields the natives take joined by
-- NUL); nil when it can. Names and values already checked are remembered (a server sends the
-- same few over and over; at most 256 values are kept). For lua-http's `write_headers` and
-- NodeMCU's `send_header`, which word their own errors.
local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"
local valid_names, valid_values, n_valid_values = {}, {}, 0
local function header_fault(name, value)
    if not valid_names[name] then
        if not name:find(TOKEN) then return "name" end
        valid_names[name] = true
    end
    if not valid_values[value] then
        if value:find("[\r\n\0]") then return "value" end
        if n_valid_values >= 256 then valid_values, n_valid_values = {}, 0 end
        valid_values[value], n_valid_values = true, n_valid_values + 1
    end
end

-- Lua 5.1 names CraftOS-PC scripts use, absent from a stock Lua 5.2 build.
unpack = unpack or table.unpack
loadstring = loadstring or load
if table.pack == nil then
    table.pack = function(...) return { n = select("#", ...), ... } end
end

return {
    ERR = ERR, ret = ret, wrap = wrap, method = method, expect = expect, header_fault = header_fault,
}
