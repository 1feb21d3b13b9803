-- require/package with cc.require rules: paths relative to the program's directory (the root
-- here), `/` absolute from the root, package.loaded caching, preload, and the not-found error.
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

local name = ("tmp-fs-test-%x%x"):format(os.epoch("utc") % 0x1000000, math.random(0, 0xffffff))
local scratch = "/" .. name

local function write(path, data)
    local h = assert(fs.open(fs.combine(scratch, path), "w"))
    h.write(data)
    h.close()
end

fs.makeDir(scratch)
write("counter.lua", "loads = (loads or 0) + 1 return { n = loads, args = { ... } }")
write("pkg/init.lua", "return 'pkg init'")
write("pkg/sub.lua", "return 'sub of ' .. require('" .. name .. ".pkg')")
write("nothing.lua", "x_required = true")
write("bad.lua", "error('module failed', 0)")
write("loop.lua", "return require('" .. name .. ".loop')")
write("abs/only.lua", "return 'absolute'")

t.test("package table", function()
    t.eq(type(package), "table", "package")
    t.eq(type(package.loaded), "table", "loaded")
    t.eq(type(package.preload), "table", "preload")
    t.eq(type(package.loaders), "table", "loaders")
    t.eq(package.searchers, package.loaders, "searchers")
    t.ok(package.path:find("^%?;%?%.lua;%?/init%.lua"), "default path: " .. package.path)
    t.eq(package.loaded.string, string, "string is loaded")
    t.eq(package.loaded._G, _G, "_G is loaded")
end)

t.test("relative require and caching", function()
    local m = require(name .. ".counter")
    t.eq(m.n, 1, "loaded once")
    t.eq(m.args[1], name .. ".counter", "module name argument")
    t.eq(m.args[2], scratch:sub(2) .. "/counter.lua", "path argument")
    t.eq(require(name .. ".counter"), m, "cached")
    t.eq(package.loaded[name .. ".counter"], m, "in package.loaded")
    package.loaded[name .. ".counter"] = nil
    t.eq(require(name .. ".counter").n, 2, "reloaded after clearing")
end)

t.test("init.lua and nested require", function()
    t.eq(require(name .. ".pkg"), "pkg init", "init.lua")
    t.eq(require(name .. ".pkg.sub"), "sub of pkg init", "sub")
end)

t.test("module returning nothing gives true", function()
    t.eq(require(name .. ".nothing"), true, "true")
    t.eq(x_required, true, "module ran in _G")
end)

t.test("absolute path entries", function()
    local old = package.path
    package.path = scratch .. "/abs/?.lua"
    local ok, v = pcall(require, "only")
    package.path = old
    t.ok(ok, tostring(v))
    t.eq(v, "absolute", "absolute")
end)

t.test("preload", function()
    package.preload["virtual.mod"] = function(n) return "preloaded " .. n end
    t.eq(require("virtual.mod"), "preloaded virtual.mod", "preload")
end)

t.test("not found error lists the tried paths", function()
    local ok, err = pcall(require, "no.such.module")
    t.eq(ok, false, "fails")
    t.ok(err:find("module 'no.such.module' not found:", 1, true), err)
    t.ok(err:find("no field package.preload['no.such.module']", 1, true), err)
    t.ok(err:find("no file 'no/such/module.lua'", 1, true), err)
    t.ok(err:find("no file 'no/such/module/init.lua'", 1, true), err)
    t.ok(err:find("no file '/rom/modules/main/no/such/module.lua'", 1, true), err)
end)

t.test("module errors propagate and are not cached", function()
    t.raises("module failed", require, name .. ".bad")
    t.eq(package.loaded[name .. ".bad"], nil, "not cached")
    t.raises("module failed", require, name .. ".bad")
end)

t.test("recursive require is detected", function()
    t.raises_match("loop or previous error loading module", require, name .. ".loop")
end)

t.test("bad argument", function()
    t.raises_match("bad argument #1", require)
end)

fs.delete(scratch)
t.test("scratch directory removed", function()
    t.eq(fs.exists(scratch), false, "gone")
end)
t.done()
