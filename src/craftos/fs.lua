-- The Lua half of the `fs` API, and `loadfile`, `dofile`, `require`, `settings` over it.
local native, support = ...
local wrap, method, expect = support.wrap, support.method, support.expect

-------------------------------------------------------------------------------------------------
-- fs
-------------------------------------------------------------------------------------------------
fs = {}
for _, name in ipairs({
    "exists", "isDir", "isReadOnly", "makeDir", "list", "getSize", "attributes", "move", "copy",
    "delete", "getFreeSpace", "getDrive", "find", "combine", "getName", "getDir",
}) do
    fs[name] = wrap(native["fs_" .. name])
end
fs.getCapacity = fs.getFreeSpace

function fs.isDriveRoot(path)
    expect(1, path, "string")
    return fs.combine(path) == "" or fs.getDrive(path) ~= fs.getDrive(fs.getDir(path))
end

local native_open = wrap(native.fs_open)

-- Builds the handle table for the userdata `ud` opened with `mode`.
local function make_handle(ud, mode)
    local h = { close = method(native.fh_close, ud), seek = method(native.fh_seek, ud) }
    if mode:sub(1, 1) == "r" then
        h.read = method(native.fh_read, ud)
        h.readLine = method(native.fh_readLine, ud)
        h.readAll = method(native.fh_readAll, ud)
    else
        h.write = method(native.fh_write, ud)
        h.writeLine = method(native.fh_writeLine, ud)
        h.flush = method(native.fh_flush, ud)
    end
    return h
end

function fs.open(path, mode)
    local ud, err = native_open(path, mode)
    if not ud then return nil, err end
    return make_handle(ud, mode)
end

-------------------------------------------------------------------------------------------------
-- loadfile, dofile
-------------------------------------------------------------------------------------------------
local load, from_host = load, wrap(native.fs_fromHost)

function loadfile(path, mode, env)
    -- Legacy form: loadfile(path, env).
    if type(mode) == "table" and env == nil then mode, env = nil, mode end
    expect(1, path, "string")
    expect(2, mode, "string", "nil")
    expect(3, env, "table", "nil")
    if not fs.exists(path) then path = from_host(path) or path end
    if fs.isDir(path) or not fs.exists(path) then return nil, "File not found" end
    local file, err = fs.open(path, "rb")
    if not file then return nil, err end
    local source = file.readAll()
    file.close()
    -- As the `lua` interpreter does: a first line starting with `#` (`#!/usr/bin/env lua`) is
    -- skipped, and made a comment so that line numbers stay right.
    if source:sub(1, 1) == "#" then source = "--" .. source end
    local name = "@/" .. fs.combine(path)
    if env then return load(source, name, mode, env) end
    return load(source, name, mode)
end

function dofile(path)
    expect(1, path, "string")
    local fn, err = loadfile(path, nil, _G)
    if not fn then error(err, 2) end
    return fn()
end

-------------------------------------------------------------------------------------------------
-- require, package (cc.require rules)
-------------------------------------------------------------------------------------------------
-- The running program's directory, which relative module paths start from; set by `boot` once
-- the runtime knows the program.
local program_dir = ""

do

    local stock = type(package) == "table" and type(package.loaded) == "table" and package.loaded or {}
    local pkg = {
        loaded = {},
        preload = {},
        path = "?;?.lua;?/init.lua;/rom/modules/main/?;/rom/modules/main/?.lua;/rom/modules/main/?/init.lua",
        config = "/\n;\n?\n!\n-",
        cpath = "",
    }
    for k, v in pairs(stock) do pkg.loaded[k] = v end
    pkg.loaded._G = _G

    local function preload_searcher(name)
        if type(pkg.preload[name]) == "function" then return pkg.preload[name], ":preload:" end
        return nil, "no field package.preload['" .. name .. "']"
    end

    local function path_searcher(name)
        if type(pkg.path) ~= "string" then error("package.path is not a string", 2) end
        local file = name:gsub("%.", "/")
        local tried = {}
        for pattern in pkg.path:gmatch("[^;]+") do
            local path = pattern:gsub("%?", file)
            if path:sub(1, 1) ~= "/" then path = fs.combine(program_dir, path) end
            if fs.exists(path) and not fs.isDir(path) then
                local fn, err = loadfile(path, nil, _G)
                if fn then return fn, path end
                return nil, err
            end
            tried[#tried + 1] = "no file '" .. path .. "'"
        end
        return nil, table.concat(tried, "\n  ")
    end

    pkg.loaders = { preload_searcher, path_searcher }
    pkg.searchers = pkg.loaders

    function pkg.searchpath(name, path, sep, rep)
        expect(1, name, "string")
        expect(2, path, "string")
        name = name:gsub("%" .. (sep or "."), rep or "/")
        local tried = {}
        for pattern in path:gmatch("[^;]+") do
            local file = pattern:gsub("%?", name)
            if fs.exists(file) and not fs.isDir(file) then return file end
            tried[#tried + 1] = "\n  no file '" .. file .. "'"
        end
        return nil, table.concat(tried)
    end

    local loading = {}

    function require(name)
        expect(1, name, "string")
        local loaded = pkg.loaded[name]
        if loaded ~= nil then
            if loaded == loading then error("loop or previous error loading module '" .. name .. "'", 0) end
            return loaded
        end
        local errors = {}
        for _, searcher in ipairs(pkg.loaders) do
            local loader, extra = searcher(name)
            if loader then
                pkg.loaded[name] = loading
                local ok, result = pcall(loader, name, extra)
                if not ok then
                    pkg.loaded[name] = nil
                    error(result, 0)
                end
                if result == nil then
                    result = pkg.loaded[name] ~= loading and pkg.loaded[name] or true
                end
                if result == nil then result = true end
                pkg.loaded[name] = result
                return result
            elseif extra then
                errors[#errors + 1] = extra
            end
        end
        error("module '" .. name .. "' not found:\n  " .. table.concat(errors, "\n  "), 2)
    end

    package = pkg
end

-------------------------------------------------------------------------------------------------
-- settings
-------------------------------------------------------------------------------------------------
-- A small Lua-table serialiser for the settings file.
local function serialise(value, indent, seen)
    local t = type(value)
    if t == "string" then
        local quoted = ("%q"):format(value):gsub("\\\n", "\\n"):gsub("\r", "\\r")
        return quoted
    end
    if t == "number" then
        if value ~= value then return "0/0" end
        if value == math.huge then return "1/0" end
        if value == -math.huge then return "-1/0" end
        if math.type and math.type(value) == "integer" then return tostring(value) end
        if value == math.floor(value) and math.abs(value) < 2 ^ 53 then return ("%d"):format(value) end
        return ("%.17g"):format(value)
    end
    if t == "boolean" or t == "nil" then return tostring(value) end
    if t ~= "table" then error("Cannot serialize type " .. t, 0) end
    if seen[value] then error("Cannot serialize table with recursive entries", 0) end
    seen[value] = true
    local inner = indent .. "  "
    local keys = {}
    for k in pairs(value) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
        if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
        return type(a) < type(b)
    end)
    local out = {}
    for _, k in ipairs(keys) do
        local key
        if type(k) == "string" and k:match("^[%a_][%w_]*$") then
            key = k
        else
            key = "[ " .. serialise(k, inner, seen) .. " ]"
        end
        out[#out + 1] = inner .. key .. " = " .. serialise(value[k], inner, seen) .. ","
    end
    seen[value] = nil
    if #out == 0 then return "{}" end
    return "{\n" .. table.concat(out, "\n") .. "\n" .. indent .. "}"
end

local function copy(value, seen)
    if type(value) ~= "table" then return value end
    seen = seen or {}
    if seen[value] then return seen[value] end
    local result = {}
    seen[value] = result
    for k, v in pairs(value) do result[copy(k, seen)] = copy(v, seen) end
    return result
end

settings = {}
do
    local values, details = {}, {}
    local valid_types = { number = true, string = true, boolean = true, table = true }

    local function check_type(name, value)
        local d = details[name]
        if d and d.type and value ~= nil and type(value) ~= d.type then
            error(("Variable '%s' must be a %s"):format(name, d.type), 3)
        end
    end

    function settings.define(name, options)
        expect(1, name, "string")
        expect(2, options, "table", "nil")
        options = options or {}
        expect(2, options.description, "string", "nil")
        expect(2, options.type, "string", "nil")
        if options.type and not valid_types[options.type] then
            error("Unknown type \"" .. options.type .. "\". Expected one of number, string, boolean, table.", 2)
        end
        details[name] = { description = options.description, default = copy(options.default), type = options.type }
        if values[name] ~= nil then check_type(name, values[name]) end
    end

    function settings.undefine(name)
        expect(1, name, "string")
        details[name] = nil
    end

    function settings.set(name, value)
        expect(1, name, "string")
        expect(2, value, "number", "string", "boolean", "table")
        check_type(name, value)
        values[name] = copy(value)
    end

    function settings.get(name, default)
        expect(1, name, "string")
        local value = values[name]
        if value ~= nil then return copy(value) end
        if default ~= nil then return default end
        local d = details[name]
        if d then return copy(d.default) end
        return nil
    end

    function settings.getDetails(name)
        expect(1, name, "string")
        local d = details[name] or {}
        local value = values[name]
        return {
            description = d.description, default = copy(d.default), type = d.type,
            value = copy(value == nil and d.default or value), changed = value ~= nil,
        }
    end

    function settings.unset(name)
        expect(1, name, "string")
        values[name] = nil
    end

    function settings.clear()
        values = {}
    end

    function settings.getNames()
        local seen, names = {}, {}
        for _, t in ipairs({ values, details }) do
            for k in pairs(t) do
                if not seen[k] then seen[k] = true; names[#names + 1] = k end
            end
        end
        table.sort(names)
        return names
    end

    function settings.load(path)
        expect(1, path, "string", "nil")
        local file = fs.open(path or ".settings", "r")
        if not file then return false end
        local source = file.readAll()
        file.close()
        local fn = load("return " .. source, "=settings", "t", {})
        if not fn then return false end
        local ok, loaded = pcall(fn)
        if not ok or type(loaded) ~= "table" then return false end
        for k, v in pairs(loaded) do
            if type(k) == "string" and valid_types[type(v)] then
                local d = details[k]
                if not (d and d.type and type(v) ~= d.type) then values[k] = v end
            end
        end
        return true
    end

    function settings.save(path)
        expect(1, path, "string", "nil")
        local ok, text = pcall(serialise, values, "", {})
        if not ok then return false end
        local file = fs.open(path or ".settings", "w")
        if not file then return false end
        file.write(text)
        file.close()
        return true
    end
end

-------------------------------------------------------------------------------------------------
-- Start of the program, once the runtime has set the root and the program's path
-------------------------------------------------------------------------------------------------
-- As CraftOS's bios.lua: saved settings are loaded before the program runs. A file that cannot
-- be read as settings does not stop the program; the message returned is logged.
local function boot()
    program_dir = fs.getDir(native.fs_program())
    if program_dir == ".." then program_dir = "" end
    if fs.exists("/.settings") and not fs.isDir("/.settings") and not settings.load("/.settings") then
        return "/.settings is not a settings file; starting without saved settings"
    end
end

return { boot = boot }
