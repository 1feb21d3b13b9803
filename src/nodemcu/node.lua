-- NodeMCU's `node` module, as far as web scripts use it, with the host's answers.
local native, support, loop = ...
local expect = support.expect

local node = {}

-- Free memory: what the system can still give, in bytes (the board reports its free heap).
function node.heap() return native.heap() end

-- The chip id: `--id` (what CraftOS's os.getComputerID returns too).
function node.chipid() return native.chip_id end
node.flashid = node.chipid

-- Microseconds since the program started (and, as the ESP32 build returns, a wrap count).
function node.uptime() return native.uptime_us(), 0 end

-- Ends the program and starts it again (the `ccserve` command re-executes itself, so listeners
-- are closed and reopened, as on the board).
function node.restart()
    native.restart()
    pcall(coroutine.yield, "ccserve_halt")
    error("ccserve: node.restart() could not stop the program here", 0)
end

-- Checks that a Lua file parses, as compiling it to bytecode would. The firmware writes a `.lc`
-- file; ccserve runs sources, so none is written and `dofile("x.lc")` is not supported.
function node.compile(name)
    expect(1, name, "string")
    local f, err = loadfile(name)
    if not f then
        if not tostring(err):find(name, 1, true) then err = name .. ": " .. tostring(err) end
        error("node.compile: " .. err, 2)
    end
end

-- Replaces the report of errors raised in callbacks (printed on stderr by default) with
-- `handler(message)`. ccserve never reboots on such an error: a handler that wants that calls
-- node.restart().
function node.setonerror(handler)
    expect(1, handler, "function", "nil")
    loop.set_onerror(handler)
end

-- The CPU frequency setting has nothing to drive here; the value is remembered.
local cpu_freq = 80
node.CPU80MHZ, node.CPU160MHZ = 80, 160
function node.setcpufreq(freq)
    expect(1, freq, "number")
    cpu_freq = freq
    return cpu_freq
end
function node.getcpufreq() return cpu_freq end

-- node.egc: the firmware's garbage collector modes; Lua's own collector runs here.
node.egc = loop.not_provided({
    NOT_ACTIVE = 0, ON_ALLOC_FAILURE = 1, ON_MEM_LIMIT = 2, ALWAYS = 4,
    setmode = function() end,
}, "node.egc")

-- node.task.post([priority,] function): runs the function from the dispatcher, after the
-- current callback (or the main chunk) has returned. Priorities order nothing here: tasks run
-- in the order posted.
node.task = loop.not_provided({ LOW_PRIORITY = 0, MEDIUM_PRIORITY = 1, HIGH_PRIORITY = 2 },
    "node.task")
function node.task.post(priority, f)
    if f == nil then priority, f = nil, priority end
    expect(1, priority, "number", "nil")
    if type(f) ~= "function" then
        error(("bad argument #%d to 'post' (function expected, got %s)"):format(
            priority == nil and 1 or 2, type(f)), 2)
    end
    loop.post(f)
end

return loop.not_provided(node, "node")
