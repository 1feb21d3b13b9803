-- The Lua half of the `os` API, as CraftOS's bios.lua defines it.
local native, support = ...
local wrap, expect = support.wrap, support.expect

os.queueEvent = wrap(native.queueEvent)
os.startTimer = wrap(native.startTimer)
os.cancelTimer = wrap(native.cancelTimer)
os.clock = wrap(native.clock)
os.epoch = wrap(native.epoch)
os.day = wrap(native.day)

-- os.time(table) keeps Lua's meaning; os.time([clock]) is CraftOS's.
local lua_time, native_time = os.time, wrap(native.time)
function os.time(arg)
    if type(arg) == "table" then return lua_time(arg) end
    return native_time(arg)
end

function os.pullEventRaw(filter)
    return coroutine.yield(filter)
end

-- Passes an event through, raising on `terminate` (no table per event, unlike bios.lua's
-- table.pack/table.unpack, which returns the same values).
local function not_terminate(event, ...)
    if event == "terminate" then error("Terminated", 0) end
    return event, ...
end

function os.pullEvent(filter)
    return not_terminate(os.pullEventRaw(filter))
end

function sleep(time)
    expect(1, time, "number", "nil")
    local timer = os.startTimer(time or 0)
    repeat
        local _, id = os.pullEvent("timer")
    until id == timer
end
os.sleep = sleep
