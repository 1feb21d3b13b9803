-- The NodeMCU callback dispatcher.
--
-- On the board, a program's main chunk returns and the firmware goes on calling the callbacks it
-- registered: a request arrived, a timer fired, a task was posted. Here the runtime drives `run`
-- as a coroutine once the main chunk has returned; it pulls ccserve's events and calls the
-- callback each one is for, until nothing that can call one is left ("holds": open servers,
-- started timers) and no task is queued.
--
-- Every callback runs protected: an error is reported with its traceback (or handed to the
-- handler `node.setonerror` installed) and the program goes on. The firmware reboots on such an
-- error; a server should not drop every client for one bad request.
local native = ...

local pullEventRaw, startTimer, cancelTimer = os.pullEventRaw, os.startTimer, os.cancelTimer
local traceback, xpcall, tostring, type = debug.traceback, xpcall, tostring, type
local pack, unpack = table.pack, table.unpack

local loop = {}

local holds = 0           -- servers and timers that may still call back
local handlers = {}       -- event name -> function(...) (the modules' own, not protected)
local timers = {}         -- os timer id -> function
local tasks, task_head, task_tail = {}, 1, 0 -- posted functions with their arguments
local after_callback = {} -- functions run after every callback (httpserver flushes output)
local onerror             -- node.setonerror's handler

-- Something that may call back is alive (a server listens, a timer runs) / not anymore.
function loop.hold() holds = holds + 1 end
function loop.release() holds = holds - 1 end

-- Reports an error raised by a callback.
function loop.report(err)
    err = tostring(err)
    if onerror then
        local ok, failed = xpcall(onerror, traceback, err)
        if ok then return end
        err = err .. "\n(and the node.setonerror handler failed: " .. tostring(failed) .. ")"
    end
    native.report("ccserve: error in a NodeMCU callback (the program goes on): " .. err)
end

function loop.set_onerror(f) onerror = f end

local function with_traceback(err)
    if type(err) ~= "string" then err = tostring(err) end
    return traceback(err, 2)
end

-- Calls `f(...)` protected; then the work every callback may have left (output to flush).
-- Returns whether `f` returned without error.
function loop.call(f, ...)
    local ok, err = xpcall(f, with_traceback, ...)
    if not ok then loop.report(err) end
    for i = 1, #after_callback do after_callback[i]() end
    return ok
end

function loop.after_callback(f) after_callback[#after_callback + 1] = f end

-- Runs `f(...)` soon, from the dispatcher (node.task.post; deferred callbacks).
function loop.post(f, ...)
    task_tail = task_tail + 1
    tasks[task_tail] = pack(f, ...)
end

-- Calls `f()` after `seconds` (ms precision); returns an id for `loop.cancel`.
function loop.timer(seconds, f)
    local id = startTimer(seconds)
    timers[id] = f
    return id
end

function loop.cancel(id)
    if id and timers[id] then
        timers[id] = nil
        cancelTimer(id)
    end
end

-- Lets a module handle one of ccserve's internal events.
function loop.on(event, f) handlers[event] = f end

local function run_tasks()
    while task_head <= task_tail do
        local t = tasks[task_head]
        tasks[task_head] = nil
        task_head = task_head + 1
        loop.call(unpack(t, 1, t.n))
    end
end

local function dispatch(event, ...)
    if event == "timer" then
        local id = ...
        local f = timers[id]
        if f then
            timers[id] = nil
            loop.call(f)
        end
    elseif event == "terminate" then
        error("Terminated", 0)
    else
        local h = handlers[event]
        if h then h(...) end
    end
end

-- The dispatcher: runs until nothing can call back any more.
function loop.run()
    while true do
        run_tasks()
        if holds <= 0 then return end
        dispatch(pullEventRaw())
    end
end

-- A metatable for module tables: reading a field the module does not have raises an error
-- naming it (NodeMCU has it; ccserve does not).
function loop.not_provided(tbl, name)
    return setmetatable(tbl, {
        __index = function(_, key)
            error(("%s.%s is not provided by ccserve"):format(name, tostring(key)), 2)
        end,
    })
end

return loop
