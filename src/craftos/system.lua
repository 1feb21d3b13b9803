-- The CraftOS system APIs: print/write/printError/read, os ids and label, os.version, _HOST,
-- os.shutdown/reboot, peripheral (no peripherals), shell (minimal), bit, compatibility pieces.
local native, support = ...
local wrap, expect = support.wrap, support.expect

local type, select, tostring, error, pcall = type, select, tostring, error, pcall
local yield = coroutine.yield

-- os ------------------------------------------------------------------------------------------

os.getComputerID = wrap(native.getComputerID)
os.computerID = os.getComputerID
os.getComputerLabel = wrap(native.getComputerLabel)
os.computerLabel = os.getComputerLabel
os.setComputerLabel = wrap(native.setComputerLabel)

function os.version()
    return "CraftOS 1.9"
end

-- There is no computer to turn off or restart: both end the program normally (exit status 0).
-- The runtime ends the script at its next yield (this one) or error once the flag is set.
local halt = wrap(native.halt)
local function stop()
    halt()
    pcall(yield, "ccserve_halt")
    error("ccserve: computer halted", 0)
end
function os.shutdown() stop() end
function os.reboot() stop() end

_HOST = native.host
_CC_DEFAULT_SETTINGS = ""

-- Terminal output -----------------------------------------------------------------------------
-- There is no terminal: text goes to stdout unwrapped, so the line counts `write` and `print`
-- return are the newlines written (CraftOS also counts wraps at the terminal's width).

local stdout, stderr = io.stdout, io.stderr

local function newlines(s)
    local _, n = s:gsub("\n", "")
    return n
end

function write(text)
    expect(1, text, "string", "number")
    text = tostring(text)
    stdout:write(text)
    stdout:flush()
    return newlines(text)
end

-- Values tostring'd and separated by tabs, as CraftOS's print (and Lua's) does.
local function line_of(...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do
        parts[i] = tostring((select(i, ...)))
    end
    return table.concat(parts, "\t", 1, n) .. "\n"
end

function print(...)
    return write(line_of(...))
end

function printError(...)
    stderr:write(line_of(...))
    stderr:flush()
end

-- One line from stdin, without its line ending; nil at end of input. The line is read on a
-- native thread and arrives as an event, so other coroutines keep running meanwhile. Only the
-- arguments' types are checked: there is no terminal to echo to.
local request_line, STDIN_EVENT = wrap(native.requestLine), native.stdinEvent
function read(replaceChar, history, completeFn, default)
    expect(1, replaceChar, "string", "nil")
    expect(2, history, "table", "nil")
    expect(3, completeFn, "function", "nil")
    expect(4, default, "string", "nil")
    local id = request_line()
    while true do
        local _, got, line = os.pullEvent(STDIN_EVENT)
        if got == id then return line end
    end
end

-- peripheral: no peripherals are ever attached -------------------------------------------------

local function not_a_peripheral()
    error("bad argument #1 (table is not a peripheral)", 3)
end

peripheral = {}

function peripheral.getNames() return {} end

function peripheral.isPresent(name)
    expect(1, name, "string")
    return false
end

function peripheral.getType(p)
    expect(1, p, "string", "table")
    if type(p) == "table" then not_a_peripheral() end
    return nil
end

function peripheral.hasType(p, peripheral_type)
    expect(1, p, "string", "table")
    expect(2, peripheral_type, "string")
    if type(p) == "table" then not_a_peripheral() end
    return nil
end

function peripheral.getMethods(name)
    expect(1, name, "string")
    return nil
end

function peripheral.getName(p)
    expect(1, p, "table")
    not_a_peripheral()
end

function peripheral.call(name, method, ...)
    expect(1, name, "string")
    expect(2, method, "string")
    return nil
end

function peripheral.wrap(name)
    expect(1, name, "string")
    return nil
end

function peripheral.find(peripheral_type, filter)
    expect(1, peripheral_type, "string")
    expect(2, filter, "function", "nil")
    return
end

-- shell: the running script is the shell's program --------------------------------------------

-- CraftOS path normalisation (as fs.combine): `/` and `\` separate, `.` and empty parts vanish,
-- `..` removes a part (and is kept when there is none to remove). No leading `/`.
local function normalise(path)
    local parts = {}
    for part in path:gmatch("[^/\\]+") do
        if part == ".." then
            if #parts > 0 and parts[#parts] ~= ".." then
                parts[#parts] = nil
            else
                parts[#parts + 1] = ".."
            end
        elseif part ~= "." then
            parts[#parts + 1] = part
        end
    end
    return table.concat(parts, "/")
end

local function combine(a, b)
    if type(fs) == "table" and type(fs.combine) == "function" then return fs.combine(a, b) end
    return normalise(a .. "/" .. b)
end

local function is_file(path)
    if type(fs) ~= "table" or type(fs.exists) ~= "function" then return nil end
    return fs.exists(path) and not fs.isDir(path)
end

local shell_dir, shell_path = "", "."
local aliases = {}
local running = {} -- programs started with shell.run, innermost last

shell = {}

function shell.dir() return shell_dir end

function shell.setDir(dir)
    expect(1, dir, "string")
    if type(fs) == "table" and type(fs.isDir) == "function" and not fs.isDir(dir) then
        error("Not a directory", 2)
    end
    shell_dir = normalise(dir)
end

function shell.path() return shell_path end

function shell.setPath(path)
    expect(1, path, "string")
    shell_path = path
end

function shell.resolve(path)
    expect(1, path, "string")
    local first = path:sub(1, 1)
    if first == "/" or first == "\\" then return combine("", path) end
    return combine(shell_dir, path)
end

function shell.setAlias(command, program)
    expect(1, command, "string")
    expect(2, program, "string")
    aliases[command] = program
end

function shell.clearAlias(command)
    expect(1, command, "string")
    aliases[command] = nil
end

function shell.aliases()
    local copy = {}
    for k, v in pairs(aliases) do copy[k] = v end
    return copy
end

-- The program `command` names: an alias is replaced; a name with a slash is a path from the
-- shell directory; other names are looked up along the path. `.lua` may be left off. Without a
-- filesystem to look in, the resolved path is returned as is.
function shell.resolveProgram(command)
    expect(1, command, "string")
    command = aliases[command] or command
    local function try(path)
        local found = is_file(path)
        if found == nil then return path end
        if found then return path end
        if not path:find("%.lua$") and is_file(path .. ".lua") then return path .. ".lua" end
        return nil
    end
    if command:find("[/\\]") then return try(shell.resolve(command)) end
    for dir in shell_path:gmatch("[^:]+") do
        local found = try(combine(shell.resolve(dir), command))
        if found then return found end
    end
    return nil
end

function shell.getRunningProgram()
    local top = running[#running]
    if top then return top end
    return (native.program():gsub("^/", ""))
end

-- Splits a command line into words; double quotes group words.
local function tokenise(line)
    local words, quoted = {}, false
    for match in (line .. "\""):gmatch("(.-)\"") do
        if quoted then
            words[#words + 1] = match
        else
            for word in match:gmatch("[^ \t]+") do words[#words + 1] = word end
        end
        quoted = not quoted
    end
    return words
end

function shell.run(...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do
        local v = select(i, ...)
        expect(i, v, "string", "number")
        parts[i] = tostring(v)
    end
    local words = tokenise(table.concat(parts, " "))
    local command = words[1]
    if not command then return false end
    local path = shell.resolveProgram(command)
    if not path then
        printError("No such program")
        return false
    end
    local env = setmetatable({ shell = shell }, { __index = _G })
    env.arg = { [0] = path, table.unpack(words, 2) }
    local fn, err = loadfile(path, nil, env)
    if not fn then
        printError(err)
        return false
    end
    running[#running + 1] = path
    local ok, run_err = pcall(fn, table.unpack(words, 2))
    running[#running] = nil
    if not ok then
        if run_err ~= nil and run_err ~= "" then printError(run_err) end
        return false
    end
    return true
end

-- Nothing runs after the script's program, so there is no shell left to leave.
function shell.exit() end

-- Lua 5.1/5.2 compatibility pieces CraftOS-PC's Lua 5.2 (built with LUA_COMPAT_ALL) offers -----

if table.maxn == nil then
    function table.maxn(t)
        expect(1, t, "table")
        local max = 0
        for k in pairs(t) do
            if type(k) == "number" and k > max then max = k end
        end
        return max
    end
end

if math.log10 == nil then
    function math.log10(x) return math.log(x, 10) end
end
if math.pow == nil then
    function math.pow(x, y) return x ^ y end
end
if math.ldexp == nil then
    function math.ldexp(m, e) return m * 2.0 ^ e end
end
if math.frexp == nil then
    function math.frexp(x)
        if x == 0 or x ~= x or x == math.huge or x == -math.huge then return x, 0 end
        local e = math.floor(math.log(math.abs(x), 2)) + 1
        local m = x / 2.0 ^ e
        -- log may be off by one at exact powers of two
        if math.abs(m) >= 1 then m, e = m / 2, e + 1 end
        if math.abs(m) < 0.5 then m, e = m * 2, e - 1 end
        return m, e
    end
end

-- bit32 under Lua 5.4 (which has none), written with its native operators.
if bit32 == nil and _VERSION ~= "Lua 5.2" then
    bit32 = load([[
        local MASK = 0xFFFFFFFF
        local function u(x, i, name)
            local n = tonumber(x)
            if n == nil then
                error(("bad argument #%d to '%s' (number expected, got %s)"):format(i, name, type(x)), 3)
            end
            return math.floor(n) % 0x100000000
        end
        local function fold(name, op, init)
            return function(...)
                local r = init
                for i = 1, select("#", ...) do r = op(r, u(select(i, ...), i, name)) end
                return r
            end
        end
        local b = {}
        b.band = fold("band", function(a, c) return a & c end, MASK)
        b.bor = fold("bor", function(a, c) return a | c end, 0)
        b.bxor = fold("bxor", function(a, c) return a ~ c end, 0)
        function b.btest(...) return b.band(...) ~= 0 end
        function b.bnot(x) return ~u(x, 1, "bnot") & MASK end
        local function shift(x, d)
            if d <= -32 or d >= 32 then return 0 end
            if d >= 0 then return (x << d) & MASK end
            return x >> -d
        end
        function b.lshift(x, d) return shift(u(x, 1, "lshift"), math.floor(d)) end
        function b.rshift(x, d) return shift(u(x, 1, "rshift"), -math.floor(d)) end
        function b.arshift(x, d)
            x, d = u(x, 1, "arshift"), math.floor(d)
            if d < 0 or x & 0x80000000 == 0 then return shift(x, -d) end
            if d >= 32 then return MASK end
            return ((x >> d) | (MASK << (32 - d))) & MASK
        end
        function b.lrotate(x, d)
            x, d = u(x, 1, "lrotate"), math.floor(d) % 32
            return ((x << d) | (x >> (32 - d))) & MASK
        end
        function b.rrotate(x, d) return b.lrotate(x, -math.floor(d)) end
        local function field(f, w)
            w = w or 1
            if f < 0 or w <= 0 or f + w > 32 then error("trying to access non-existent bits", 3) end
            return math.floor(f), math.floor(w)
        end
        function b.extract(n, f, w)
            f, w = field(f, w)
            return (u(n, 1, "extract") >> f) & ((1 << w) - 1)
        end
        function b.replace(n, v, f, w)
            f, w = field(f, w)
            local m = ((1 << w) - 1) << f
            return (u(n, 1, "replace") & ~m | ((u(v, 2, "replace") << f) & m)) & MASK
        end
        return b
    ]], "=ccserve/bit32.lua")()
end

-- CraftOS's deprecated `bit` API over bit32.
if bit32 then
    bit = {
        band = bit32.band,
        bor = bit32.bor,
        bxor = bit32.bxor,
        bnot = bit32.bnot,
        blshift = bit32.lshift,
        brshift = bit32.arshift,
        blogic_rshift = bit32.rshift,
    }
end
