-- NodeMCU's `tmr` module on ccserve's timers (millisecond precision). A started timer keeps the
-- program running after its main chunk has returned; its callback runs from the dispatcher, with
-- the timer object as its argument.
local native, support, loop = ...
local expect = support.expect

local tmr = { ALARM_SINGLE = 0, ALARM_SEMI = 1, ALARM_AUTO = 2 }

local timer_methods = {}
local timer_mt = { __index = timer_methods, __name = "tmr.timer" }
function timer_mt:__tostring() return "tmr.timer" end

local function check_interval(ms, index)
    expect(index, ms, "number")
    if ms ~= ms or ms < 1 or ms > 0x7FFFFFFF then
        error(("bad argument #%d (interval of 1 to 2147483647 ms expected, got %s)"):format(index,
            tostring(ms)), 3)
    end
    return ms
end

local function check_mode(mode, index)
    expect(index, mode, "number")
    if mode ~= 0 and mode ~= 1 and mode ~= 2 then
        error(("bad argument #%d (tmr.ALARM_SINGLE, ALARM_SEMI or ALARM_AUTO expected, got %s)")
            :format(index, tostring(mode)), 3)
    end
    return mode
end

local function self_check(t, name)
    if getmetatable(t) ~= timer_mt then
        error(("%s: call it on a timer (t:%s(...))"):format(name, name), 3)
    end
end

-- Arms the ccserve timer behind `t` for one interval.
local fire
local function arm(t)
    t.armed = loop.timer(t.ms / 1000, function() fire(t) end)
end

fire = function(t)
    t.armed = nil
    local cb = t.cb
    if t.mode == tmr.ALARM_AUTO then
        arm(t) -- before the callback, which may stop it
    else
        t.running = false
        loop.release()
        if t.mode == tmr.ALARM_SINGLE then t.cb = nil end -- unregistered once fired
    end
    if cb then cb(t) end
end

function timer_methods:register(interval, mode, cb)
    self_check(self, "register")
    check_interval(interval, 1)
    check_mode(mode, 2)
    expect(3, cb, "function")
    self.ms, self.mode, self.cb = interval, mode, cb
end

-- Starts the timer; true if it runs now, false if it was never registered. With `restart`, a
-- running timer starts its interval over.
function timer_methods:start(restart)
    self_check(self, "start")
    if not self.cb then return false end
    if self.running then
        if not restart then return true end
        loop.cancel(self.armed)
    else
        self.running = true
        loop.hold()
    end
    arm(self)
    return true
end

function timer_methods:alarm(interval, mode, cb)
    self_check(self, "alarm")
    self:register(interval, mode, cb)
    return self:start()
end

-- Stops the timer; true if it was running. It stays registered.
function timer_methods:stop()
    self_check(self, "stop")
    if not self.running then return false end
    loop.cancel(self.armed)
    self.armed, self.running = nil, false
    loop.release()
    return true
end

function timer_methods:unregister()
    self_check(self, "unregister")
    self:stop()
    self.cb = nil
end

-- Changes the interval; a running timer starts its new interval now.
function timer_methods:interval(ms)
    self_check(self, "interval")
    self.ms = check_interval(ms, 1)
    if self.running then
        loop.cancel(self.armed)
        arm(self)
    end
end

-- `is started, mode`, or nil for a timer never registered.
function timer_methods:state()
    self_check(self, "state")
    if not self.cb then return nil end
    return self.running == true, self.mode
end

function tmr.create()
    return setmetatable({ ms = 1, running = false }, timer_mt)
end

-- The firmware's old static timers 0-6: tmr.alarm(id, interval, mode, cb) and friends.
local static = {}
local function static_timer(id)
    expect(1, id, "number")
    if id ~= math.floor(id) or id < 0 or id > 6 then
        error(("bad argument #1 (timer id 0-6 expected, got %s)"):format(tostring(id)), 3)
    end
    static[id] = static[id] or tmr.create()
    return static[id]
end
for _, name in ipairs({ "alarm", "register", "start", "stop", "unregister", "interval", "state" }) do
    tmr[name] = function(id, ...) return timer_methods[name](static_timer(id), ...) end
end

-- The system counter, in microseconds since the program started, wrapping at 2^31 as the
-- firmware's does.
function tmr.now() return native.uptime_us() % 0x80000000 end

-- Seconds since the program started.
function tmr.time() return math.floor(native.uptime_us() / 1000000) end

-- Busy-waits on the board; here the Lua thread sleeps (and serves nothing meanwhile, as there).
local delay_us = support.wrap(native.delay_us)
function tmr.delay(us) delay_us(us) end

-- The watchdog: nothing to feed here.
function tmr.wdclr() end

return loop.not_provided(tmr, "tmr")
