-- The CraftOS system APIs: os ids/label/version, _HOST, print/write, peripheral stubs, shell,
-- bit, compatibility pieces. Run as `ccserve --bind 127.0.0.1 lua-tests/system.lua` (default id
-- 0, no label; the fs root is lua-tests/, so this program is /system.lua).

-- Run again by the shell.run test below: record what the child saw and stop.
if ... == "__child" then
    _G.system_child = { args = table.pack(...), arg = arg, running = shell.getRunningProgram() }
    return
end
if ... == "__child_fails" then error("child failed on purpose", 0) end

local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

-- os ------------------------------------------------------------------------------------------

t.test("getComputerID is 0 by default, under both names", function()
    t.eq(os.getComputerID(), 0, "getComputerID")
    t.eq(os.computerID(), 0, "computerID")
end)

t.test("no label by default: no value at all", function()
    t.eq(select("#", os.getComputerLabel()), 0, "value count")
    t.eq(os.computerLabel(), nil, "computerLabel")
end)

t.test("setComputerLabel sets, a number becomes a string, nil clears", function()
    t.eq(select("#", os.setComputerLabel("my server")), 0, "setComputerLabel returns nothing")
    t.eq(os.getComputerLabel(), "my server", "label")
    t.eq(os.computerLabel(), "my server", "computerLabel")
    os.setComputerLabel(42)
    t.eq(os.getComputerLabel(), "42", "number label")
    os.setComputerLabel(nil)
    t.eq(os.getComputerLabel(), nil, "cleared")
    os.setComputerLabel("again")
    os.setComputerLabel()
    t.eq(os.getComputerLabel(), nil, "cleared without argument")
end)

t.test("setComputerLabel refuses a table", function()
    t.raises("bad argument #1 (expected string, got table)", os.setComputerLabel, {})
end)

t.test("os.version is CraftOS-PC 2.8's", function()
    t.eq(os.version(), "CraftOS 1.9", "version")
end)

t.test("_HOST names ccserve and the CraftOS-PC version followed", function()
    t.eq(type(_HOST), "string", "type")
    t.ok(_HOST:find("^ComputerCraft %d+%.%d+%.%d+ %("), "starts like CraftOS-PC's: " .. _HOST)
    t.ok(_HOST:find("ccserve %d+%.%d+%.%d+"), "names ccserve: " .. _HOST)
    t.ok(_HOST:find("CraftOS%-PC v2%.8"), "names CraftOS-PC 2.8: " .. _HOST)
    t.eq(_CC_DEFAULT_SETTINGS, "", "_CC_DEFAULT_SETTINGS")
end)

t.test("shutdown and reboot exist", function()
    t.eq(type(os.shutdown), "function", "shutdown")
    t.eq(type(os.reboot), "function", "reboot")
end)

-- Output ---------------------------------------------------------------------------------------

t.test("write returns the lines it printed", function()
    t.eq(write(""), 0, "empty")
    t.eq(write("no newline "), 0, "no newline")
    t.eq(write("one\n"), 1, "one newline")
    t.eq(write(12), 0, "number")
    t.eq(write("\na\nb\n"), 3, "three newlines")
end)

t.test("write refuses non-strings", function()
    t.raises_match(":%d+: bad argument #1 to 'write' %(string or number expected, got table%)",
        function() write({}) end)
    t.raises_match("^bad argument #1 %(string or number expected, got nil%)", write)
end)

t.test("print returns the lines it printed", function()
    t.eq(print(), 1, "no values")
    t.eq(print("print", "test", 1, nil, true), 1, "several values")
    t.eq(print("two\nlines"), 2, "embedded newline")
    t.eq(print(setmetatable({}, { __tostring = function() return "x\ny\nz" end })), 3,
        "__tostring used")
end)

t.test("printError returns nothing", function()
    t.eq(select("#", printError("printError test (expected on stderr)")), 0, "values")
end)

t.test("read checks its arguments", function()
    t.raises_match(":%d+: bad argument #1 to 'read' %(string expected, got number%)",
        function() read(1) end)
    t.raises_match("^bad argument #2 %(table expected, got string%)", read, nil, "x")
end)

-- peripheral -----------------------------------------------------------------------------------

t.test("no peripherals", function()
    local names = peripheral.getNames()
    t.eq(type(names), "table", "getNames type")
    t.eq(next(names), nil, "getNames empty")
    t.eq(peripheral.isPresent("top"), false, "isPresent")
    t.eq(peripheral.getType("top"), nil, "getType")
    t.eq(peripheral.hasType("top", "modem"), nil, "hasType")
    t.eq(peripheral.getMethods("top"), nil, "getMethods")
    t.eq(peripheral.call("top", "open", 1), nil, "call")
    t.eq(peripheral.wrap("top"), nil, "wrap")
    t.eq(peripheral.find("modem"), nil, "find")
    t.eq(select("#", peripheral.find("modem")), 0, "find returns nothing")
end)

t.test("peripheral argument checks", function()
    t.raises_match(":%d+: bad argument #1 to 'isPresent' %(string expected, got nil%)",
        function() peripheral.isPresent() end)
    t.raises_match(":%d+: bad argument #2 to 'call' %(string expected, got nil%)",
        function() peripheral.call("top") end)
    t.raises_match("^bad argument #1 %(string expected, got number%)", peripheral.wrap, 1)
    t.raises("bad argument #1 (table is not a peripheral)", peripheral.getName, {})
    t.raises("bad argument #1 (table is not a peripheral)", peripheral.getType, {})
end)

-- shell ----------------------------------------------------------------------------------------

t.test("shell.dir is the root", function()
    t.eq(shell.dir(), "", "dir")
end)

t.test("shell.resolve is relative to the shell directory", function()
    t.eq(shell.resolve("a.txt"), "a.txt", "plain")
    t.eq(shell.resolve("/a/./b/../c"), "a/c", "absolute, normalised")
    t.eq(shell.resolve("x\\y"), "x/y", "backslash")
    shell.setDir("/")
    t.eq(shell.dir(), "", "setDir /")
end)

t.test("shell.getRunningProgram has no leading slash", function()
    t.eq(shell.getRunningProgram(), "system.lua", "program")
end)

t.test("shell.path and aliases", function()
    t.eq(type(shell.path()), "string", "path")
    local old = shell.path()
    shell.setPath(".:/bin")
    t.eq(shell.path(), ".:/bin", "setPath")
    shell.setPath(old)
    shell.setAlias("sys", "system.lua")
    t.eq(shell.aliases().sys, "system.lua", "alias")
    t.eq(shell.resolveProgram("sys"), "system.lua", "alias resolved")
    shell.clearAlias("sys")
    t.eq(shell.aliases().sys, nil, "alias cleared")
end)

t.test("shell.resolveProgram finds programs, with or without .lua", function()
    t.eq(shell.resolveProgram("system.lua"), "system.lua", "exact")
    t.eq(shell.resolveProgram("system"), "system.lua", ".lua added")
    t.eq(shell.resolveProgram("/system"), "system.lua", "absolute")
    t.eq(shell.resolveProgram("no_such_program_here"), nil, "missing")
end)

t.test("shell.run runs a program with arguments and arg", function()
    _G.system_child = nil
    t.eq(shell.run("system", "__child", "two words"), true, "run result")
    local child = t.ok(_G.system_child, "child ran")
    t.eq(child.args.n, 3, "argument count")
    t.eq(child.args[1], "__child", "arg 1")
    t.eq(child.args[2], "two", "arg 2 (words split)")
    t.eq(child.arg[0], "system.lua", "arg[0]")
    t.eq(child.arg[3], "words", "arg[3]")
    t.eq(child.running, "system.lua", "running program inside")
    t.eq(shell.getRunningProgram(), "system.lua", "running program after")
    _G.system_child = nil
end)

t.test("shell.run: quoted words, failures", function()
    _G.system_child = nil
    t.eq(shell.run('system __child "two words"'), true, "run result")
    t.eq(_G.system_child.args[2], "two words", "quoted")
    t.eq(shell.run("system", "__child_fails"), false, "error in the program")
    t.eq(shell.run("no_such_program_here"), false, "missing program")
    _G.system_child = nil
end)

t.test("shell.exit exists", function()
    t.eq(type(shell.exit), "function", "exit")
end)

-- Compatibility pieces -------------------------------------------------------------------------

t.test("table.maxn", function()
    t.eq(table.maxn({}), 0, "empty")
    t.eq(table.maxn({ 1, 2, 3 }), 3, "sequence")
    t.eq(table.maxn({ [1] = 1, [10] = 1, [2.5] = 1, x = 1 }), 10, "sparse")
    t.eq(table.maxn({ [-3] = 1, [0.5] = 1 }), 0.5, "fraction")
end)

t.test("math compatibility functions", function()
    t.eq(math.pow(2, 10), 1024, "pow")
    t.eq(math.ldexp(0.75, 4), 12, "ldexp")
    local m, e = math.frexp(12)
    t.eq(m, 0.75, "frexp mantissa")
    t.eq(e, 4, "frexp exponent")
    t.eq(math.log10(1000), 3, "log10")
end)

t.test("bit API", function()
    t.eq(bit.band(0xF0F0, 0xFF00), 0xF000, "band")
    t.eq(bit.bor(0xF0, 0x0F), 0xFF, "bor")
    t.eq(bit.bxor(0xFF, 0x0F), 0xF0, "bxor")
    t.eq(bit.bnot(0), 0xFFFFFFFF, "bnot")
    t.eq(bit.blshift(1, 4), 16, "blshift")
    t.eq(bit.blshift(0x80000000, 1), 0, "blshift overflow")
    t.eq(bit.brshift(0x80000000, 4), 0xF8000000, "brshift keeps the sign")
    t.eq(bit.brshift(256, 4), 16, "brshift positive")
    t.eq(bit.blogic_rshift(0x80000000, 4), 0x08000000, "blogic_rshift")
    t.eq(bit.band(-1, 0xFF), 0xFF, "negative numbers wrap to 32 bits")
end)

t.test("bit32", function()
    t.eq(bit32.band(), 0xFFFFFFFF, "band()")
    t.eq(bit32.bor(1, 2, 4), 7, "bor variadic")
    t.eq(bit32.btest(1, 2), false, "btest")
    t.eq(bit32.extract(0xABCD, 4, 8), 0xBC, "extract")
    t.eq(bit32.replace(0, 0xF, 8, 4), 0xF00, "replace")
    t.eq(bit32.lrotate(0x80000001, 1), 3, "lrotate")
    t.eq(bit32.rrotate(3, 1), 0x80000001, "rrotate")
    t.eq(bit32.arshift(-16, 2), 0xFFFFFFFC, "arshift")
end)

t.done()
