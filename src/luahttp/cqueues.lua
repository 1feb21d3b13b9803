-- cqueues, as far as lua-http's scripts use it, over ccserve's event loop.
--
-- One scheduler runs every coroutine a controller manages ("tasks"). A task that must wait yields
-- a wait request (keys it can be woken by, and maybe a deadline) to the scheduler, which resumes
-- it when one fires: a timer, a condition, a stream of the streaming engine becoming ready
-- (`ccserve_stream_ready`), or a CraftOS event (a task may call `os.pullEvent` too). Controllers
-- are groups of tasks: `cq:loop()` drives the scheduler until its group is empty. Only the
-- outermost loop pulls events; a loop called from inside a task waits for its group instead.
local native = ...

local STREAM_READY = native.stream_ready
local errno = require("cqueues.errno")

local pack, unpack = table.pack, table.unpack
local create, resume, status, running = coroutine.create, coroutine.resume, coroutine.status,
    coroutine.running
local yield = coroutine.yield

local cqueues = { VERSION = 20200726 }

-- Scheduler state -------------------------------------------------------------------------------

local tasks = {}      -- coroutine -> task {co, cq, wait}
-- FIFO of tasks to resume, from ready_head to ready_tail, each with the values to resume it
-- with (a packed table, or nil for none).
local ready_task, ready_values = {}, {}
local ready_head, ready_tail = 1, 0
local waiting = {}    -- key -> set of tasks waiting on it
local hooks = {}      -- event name -> function(...) for events that feed modules (new streams)
local after_yield     -- called after every resume of a task (flushes deferred response heads)
local driving = false -- whether a loop is pulling events

local WAIT = {}       -- metatable of wait requests

-- Coroutines are reused: a "runner" runs the functions given to `wrap` one after the other,
-- yielding FINISHED between them, so a server does not create a coroutine per request.
local FINISHED = {}
-- A task started by `_spawn` is first resumed with its fields `f`, `a`, `b` (no table packed).
local SPAWNED = {}
local idle_runners, n_idle_runners = {}, 0
local MAX_IDLE_RUNNERS = 64

local function run(f, ...)
    f(...)
end

local function runner_body(...)
    run(...)
    while true do run(yield(FINISHED)) end
end

local function schedule(task, values)
    ready_tail = ready_tail + 1
    ready_task[ready_tail], ready_values[ready_tail] = task, values
end

local function unregister(task)
    local wait = task.wait
    if not wait then return end
    task.wait = nil
    for key in pairs(wait.keys) do
        local set = waiting[key]
        if set then
            set[task] = nil
            if next(set) == nil then waiting[key] = nil end
        end
    end
    if wait.timer then os.cancelTimer(wait.timer) end
end

-- Wakes every task waiting on `key` with `...` (after `unregister`, so each wakes once).
local function wake(key, ...)
    local set = waiting[key]
    if not set then return 0 end
    local n = 0
    for task in pairs(set) do
        unregister(task)
        schedule(task, pack(key, ...))
        n = n + 1
    end
    return n
end

-- Registers `task` as waiting for one of `keys` (a table key -> true), until `timeout` seconds.
local function register(task, keys, timeout, filter)
    local wait = { keys = keys, filter = filter }
    if timeout then
        wait.timer = os.startTimer(math.max(timeout, 0))
        keys["timer:" .. wait.timer] = true
    end
    task.wait = wait
    for key in pairs(keys) do
        local set = waiting[key]
        if not set then
            set = {}
            waiting[key] = set
        end
        set[task] = true
    end
end

-- The task running now (nil outside a managed coroutine).
local function current()
    local co = running()
    return co and tasks[co]
end

-- Runs `task` with `values` (packed, or nil); returns false and the error if it raised.
local function step_task(task, values)
    local ok, request
    if values == SPAWNED then
        local f, a, b = task.f, task.a, task.b
        task.f, task.a, task.b = nil, nil, nil
        ok, request = resume(task.co, f, a, b)
    elseif values then
        ok, request = resume(task.co, unpack(values, 1, values.n))
    else
        ok, request = resume(task.co)
    end
    if after_yield then after_yield() end
    if not ok then
        tasks[task.co] = nil
        task.cq.n = task.cq.n - 1
        if task.cq.n == 0 and task.cq.idle then task.cq.idle:signal() end
        return false, request, task
    end
    if request == FINISHED or status(task.co) == "dead" then
        local cq = task.cq
        tasks[task.co] = nil
        cq.n = cq.n - 1
        if request == FINISHED and n_idle_runners < MAX_IDLE_RUNNERS then
            -- The runner and its task table serve the next `wrap`.
            n_idle_runners = n_idle_runners + 1
            idle_runners[n_idle_runners] = task
        end
        if cq.n == 0 and cq.idle then cq.idle:signal() end
        return true
    end
    if getmetatable(request) == WAIT then
        register(task, request.keys, request.timeout)
    else
        -- A CraftOS wait (`os.pullEvent(filter)`, `sleep`): woken by a matching event.
        register(task, { event = true }, nil, type(request) == "string" and request or nil)
    end
    return true
end

-- Runs every ready task. Stops at the first error (returned).
local function run_ready()
    while ready_head <= ready_tail do
        local task, values = ready_task[ready_head], ready_values[ready_head]
        ready_task[ready_head], ready_values[ready_head] = nil, nil
        ready_head = ready_head + 1
        local ok, err, failed = step_task(task, values)
        if not ok then return false, err, failed end
    end
    ready_head, ready_tail = 1, 0
    return true
end

-- Hands one event (its name and values) to whoever waits for it.
local function dispatch(name, ...)
    if name == "timer" then
        if wake("timer:" .. tostring((...)), "timeout") > 0 then return end
    elseif name == STREAM_READY then
        wake("stream:" .. tostring((...)))
        return
    else
        local hook = hooks[name]
        if hook then return hook(...) end
    end
    local set = waiting.event
    if set then
        local ev
        for task in pairs(set) do
            local filter = task.wait.filter
            if filter == nil or filter == name or name == "terminate" then
                ev = ev or pack(name, ...)
                unregister(task)
                schedule(task, ev)
            end
        end
    end
    if name == "terminate" then error("Terminated", 0) end
end

-- Takes the next event and hands it to `dispatch`; returns true if it was the timer `timer`
-- (the caller's own deadline) instead.
local function deliver(timer, name, ...)
    if name == "timer" and timer and (...) == timer then return true end
    dispatch(name, ...)
    return false
end

local function next_event(timer)
    return deliver(timer, os.pullEventRaw())
end

-- Drives the scheduler until `done()` holds or `deadline` (monotonic seconds) passes. Returns
-- true, or false and the error of a task that raised (and the task's coroutine).
local function drive(done, deadline)
    local outer = not driving
    driving = true
    local timer = deadline and os.startTimer(math.max(deadline - cqueues.monotime(), 0))
    local ok, err, task = true, nil, nil
    while true do
        ok, err, task = run_ready()
        if not ok or done() then break end
        if deadline and cqueues.monotime() >= deadline then break end
        local dispatched, e = pcall(next_event, timer)
        if not dispatched then
            if outer then driving = false end
            if timer then os.cancelTimer(timer) end
            error(e, 0)
        end
        if e then timer = nil end
    end
    if timer then os.cancelTimer(timer) end
    if outer then driving = false end
    if not ok then return false, err, errno.EINVAL, task and task.co end
    return true
end

-- Waits (from inside a task) for one of `keys`, at most `timeout` seconds. Outside any task,
-- drives the scheduler meanwhile. Returns the key that fired ("timeout" for the deadline) and
-- what came with it.
local function wait_for(keys, timeout)
    if current() then
        local got = pack(yield(setmetatable({ keys = keys, timeout = timeout }, WAIT)))
        if type(got[1]) == "string" and got[1]:sub(1, 6) == "timer:" then
            return "timeout"
        end
        return unpack(got, 1, got.n)
    end
    -- Not in a task: become a task-like waiter of the main coroutine by polling the keys'
    -- owners through the scheduler until one fires.
    local fired
    local probe = { cq = { n = 1 } }
    local co = create(function()
        fired = pack(wait_for(keys, timeout))
    end)
    probe.co = co
    tasks[co] = probe
    schedule(probe, nil)
    local ok, err = drive(function() return fired ~= nil end)
    tasks[co] = nil
    if not ok then error(err, 0) end
    return unpack(fired, 1, fired.n)
end

-- Modules built on the scheduler -----------------------------------------------------------------

-- Internal, for http.server and http.websocket: feed the values of events named `name` to
-- `fn(...)`.
function cqueues._on(name, fn) hooks[name] = fn end

-- Internal, for http.server: `fn()` runs after every resume of a coroutine.
function cqueues._after_yield(fn) after_yield = fn end

-- Internal: waits for the exchange `id` to become ready (or `timeout`): "ready" or "timeout".
function cqueues._wait_stream(id, timeout)
    local key = wait_for({ ["stream:" .. tostring(id)] = true }, timeout)
    if key == "timeout" then return "timeout" end
    return "ready"
end

-- Conditions (cqueues.condition) ----------------------------------------------------------------

local condition = {}
local condition_mt = { __index = condition, __name = "cqueues.condition" }

function condition.new(lifo)
    return setmetatable({ lifo = lifo and true or false }, condition_mt)
end

-- Waits until signalled (true) or `timeout` seconds pass (false).
function condition:wait(timeout)
    return wait_for({ [self] = true }, timeout) == self
end

-- Wakes up to `n` waiters (all by default).
function condition:signal(n)
    local set = waiting[self]
    if not set then return true end
    local count = 0
    for task in pairs(set) do
        if n and count >= n then break end
        unregister(task)
        schedule(task, pack(self))
        count = count + 1
    end
    return true
end

function condition.type(obj)
    return getmetatable(obj) == condition_mt and "condition" or nil
end

cqueues.condition = condition
cqueues._condition_mt = condition_mt

-- Controllers -------------------------------------------------------------------------------------

local controller = {}
local controller_mt = { __index = controller, __name = "cqueue" }

function cqueues.new()
    return setmetatable({ n = 0, idle = condition.new() }, controller_mt)
end

-- Manages `co`, first resumed with `values` (packed, or nil) at the next step.
local function manage(cq, co, values)
    local task = { co = co, cq = cq }
    tasks[co] = task
    cq.n = cq.n + 1
    schedule(task, values)
    return cq
end

-- A runner and its task for the controller `cq` (an idle one when there is one).
local function runner_task(cq)
    local task
    if n_idle_runners > 0 then
        task = idle_runners[n_idle_runners]
        idle_runners[n_idle_runners] = nil
        n_idle_runners = n_idle_runners - 1
        task.cq = cq
    else
        task = { co = create(runner_body), cq = cq }
    end
    tasks[task.co] = task
    cq.n = cq.n + 1
    return task
end

-- Runs `f(...)` as a coroutine of this controller (it starts at the next step).
function controller:wrap(f, ...)
    assert(type(f) == "function", "bad argument #1 to 'wrap' (function expected)")
    schedule(runner_task(self), pack(f, ...))
    return self
end

-- Internal, for http.server: `cq:wrap(f, a, b)` for the function of every request.
function cqueues._spawn(cq, f, a, b)
    local task = runner_task(cq)
    task.f, task.a, task.b = f, a, b
    schedule(task, SPAWNED)
end

-- Manages the coroutine `co` (it starts at the next step).
function controller:attach(co)
    assert(type(co) == "thread", "bad argument #1 to 'attach' (coroutine expected)")
    return manage(self, co, nil)
end

-- Runs until every coroutine of this controller has ended, or `timeout` seconds. Returns true,
-- or false and the error of a coroutine that raised (that coroutine is dropped; the others stay
-- and a later loop goes on with them).
function controller:loop(timeout)
    if current() then
        -- Inside a task: the outer loop drives everything; wait for this group to empty.
        local deadline = timeout and cqueues.monotime() + timeout
        while self.n > 0 do
            local left = deadline and deadline - cqueues.monotime()
            if left and left <= 0 then break end
            self.idle:wait(left)
        end
        return true
    end
    local deadline = timeout and cqueues.monotime() + timeout
    return drive(function() return self.n == 0 end, deadline)
end

-- Runs what is ready; if this controller still has coroutines, waits at most `timeout` seconds
-- (indefinitely without one) for one event, hands it over, and runs what that made ready.
function controller:step(timeout)
    if current() then
        cqueues.sleep(0)
        return true
    end
    local ok, err, task = run_ready()
    if ok and self.n > 0 then
        local timer = timeout and os.startTimer(math.max(timeout, 0))
        if not next_event(timer) and timer then os.cancelTimer(timer) end
        ok, err, task = run_ready()
    end
    if not ok then return false, err, errno.EINVAL, task and task.co end
    return true
end

function controller:empty() return self.n == 0 end
function controller:count() return self.n end

-- ccserve has no file descriptor to poll: its event loop is internal.
function controller:pollfd() return nil end
function controller:events() return nil end
function controller:timeout() return nil end

function controller:cancel()
    error("cqueues: cq:cancel is not supported by ccserve", 2)
end

-- Module functions ----------------------------------------------------------------------------

-- Seconds on a monotonic clock.
function cqueues.monotime()
    return os.epoch("nano") / 1e9
end

-- Sleeps `n` seconds (only the calling coroutine; other tasks go on).
function cqueues.sleep(n)
    wait_for({}, n or 0)
end

-- The controller running the calling coroutine, and whether this is the main coroutine.
function cqueues.running()
    local task = current()
    if task then return task.cq, false end
    return nil, true
end

-- Waits for one of the conditions given, or a number of seconds among the arguments; returns the
-- condition that was signalled, or the timeout. Other kinds of objects are not supported.
function cqueues.poll(...)
    local keys, timeout = {}, nil
    for i = 1, select("#", ...) do
        local obj = select(i, ...)
        if type(obj) == "number" then
            timeout = timeout and math.min(timeout, obj) or obj
        elseif getmetatable(obj) == condition_mt then
            keys[obj] = true
        elseif obj ~= nil then
            error("cqueues.poll: only conditions and timeouts are supported by ccserve", 2)
        end
    end
    if next(keys) == nil and not timeout then
        -- Nothing to wait for: yield once, as cqueues does.
        timeout = 0
    end
    local key = wait_for(keys, timeout)
    if key == "timeout" then return timeout end
    return key
end

function cqueues.type(obj)
    local mt = getmetatable(obj)
    if mt == controller_mt then return "controller" end
    if mt == condition_mt then return "condition" end
    return nil
end

function cqueues.interpose()
    error("cqueues.interpose is not supported by ccserve", 2)
end

cqueues.errno = errno

return setmetatable(cqueues, {
    __index = function(_, name)
        error("cqueues." .. tostring(name) .. " is not supported by ccserve", 2)
    end,
})
