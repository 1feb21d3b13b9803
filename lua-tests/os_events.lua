-- os.pullEvent / pullEventRaw / queueEvent, timers, sleep, clocks, parallel, `...` and `arg`.
local script_args = table.pack(...)
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")

-- Pulls events (no filter) until one named `name` arrives; returns it packed, plus the names of
-- the events seen before it. Bounded: gives up after `limit` events.
local function pull_until(name, limit)
    local seen = {}
    for _ = 1, limit or 100 do
        local ev = table.pack(os.pullEventRaw())
        if ev[1] == name then return ev, seen end
        seen[#seen + 1] = ev[1]
    end
    error("event " .. name .. " never arrived", 2)
end

local function contains(list, v)
    for _, x in ipairs(list) do
        if x == v then return true end
    end
    return false
end

-- Events ------------------------------------------------------------------------------------

t.test("pullEvent without filter returns the event and all its parameters", function()
    os.queueEvent("ev_a", 1, "two", true, nil, 5.5)
    local ev = table.pack(os.pullEvent())
    t.eq(ev.n, 6, "value count")
    t.eq(ev[1], "ev_a", "name")
    t.eq(ev[2], 1, "p1")
    t.eq(ev[3], "two", "p2")
    t.eq(ev[4], true, "p3")
    t.eq(ev[5], nil, "p4")
    t.eq(ev[6], 5.5, "p5")
end)

t.test("queueEvent passes tables through by reference", function()
    local tbl = {}
    os.queueEvent("ev_tbl", tbl)
    local name, got = os.pullEvent()
    t.eq(name, "ev_tbl", "name")
    t.eq(got, tbl, "same table")
end)

t.test("pullEvent with a filter returns the matching event and drops the others", function()
    os.queueEvent("skip_me", 1)
    os.queueEvent("want", 2)
    os.queueEvent("after", 3)
    local name, p = os.pullEvent("want")
    t.eq(name, "want", "name")
    t.eq(p, 2, "param")
    -- The skipped event was dropped at top level, so the next event is the one after.
    local name2, p2 = os.pullEvent()
    t.eq(name2, "after", "next name")
    t.eq(p2, 3, "next param")
end)

t.test("pullEventRaw with a filter returns the matching event and drops the others", function()
    os.queueEvent("raw_skip")
    os.queueEvent("raw_want", "x")
    os.queueEvent("raw_after")
    local name, p = os.pullEventRaw("raw_want")
    t.eq(name, "raw_want", "name")
    t.eq(p, "x", "param")
    t.eq((os.pullEventRaw()), "raw_after", "next")
end)

t.test("queueEvent delivers events in FIFO order", function()
    for i = 1, 50 do os.queueEvent("fifo", i) end
    for i = 1, 50 do
        local name, n = os.pullEvent()
        t.eq(name, "fifo", "name " .. i)
        t.eq(n, i, "order")
    end
end)

t.test("queueEvent accepts many events without dropping any", function()
    for i = 1, 300 do os.queueEvent("many", i) end
    os.queueEvent("many_end")
    local count, last = 0, 0
    for _ = 1, 301 do
        local name, i = os.pullEvent()
        if name == "many_end" then break end
        t.eq(name, "many", "name")
        t.eq(i, last + 1, "sequence")
        last, count = i, count + 1
    end
    t.eq(count, 300, "delivered")
end)

t.test("queueEvent without a name raises the native argument error", function()
    t.raises("bad argument #1 (expected string, got no value)", os.queueEvent)
    t.raises("bad argument #1 (expected string, got nil)", os.queueEvent, nil)
    t.raises("bad argument #1 (expected string, got table)", os.queueEvent, {})
    -- Nothing was queued by the failed calls.
    os.queueEvent("marker")
    t.eq((os.pullEvent()), "marker", "next event")
end)

t.test("terminate makes pullEvent raise exactly 'Terminated'", function()
    os.queueEvent("terminate")
    t.raises("Terminated", os.pullEvent)
end)

t.test("terminate passes a pullEvent filter and raises 'Terminated'", function()
    os.queueEvent("terminate")
    t.raises("Terminated", os.pullEvent, "something_else")
end)

t.test("pullEventRaw returns terminate as an ordinary event", function()
    os.queueEvent("terminate")
    local ev = table.pack(os.pullEventRaw())
    t.eq(ev[1], "terminate", "name")
    t.eq(ev.n, 1, "value count")
end)

t.test("pullEventRaw with a filter still receives terminate", function()
    os.queueEvent("other")
    os.queueEvent("terminate")
    t.eq((os.pullEventRaw("never_queued")), "terminate", "name")
end)

-- Timers ------------------------------------------------------------------------------------

t.test("startTimer returns an id that a timer event carries", function()
    local id = os.startTimer(0.05)
    t.eq(type(id), "number", "id type")
    local ev = table.pack(os.pullEvent("timer"))
    t.eq(ev[1], "timer", "name")
    t.eq(ev[2], id, "id")
    t.eq(ev.n, 2, "value count")
end)

t.test("startTimer ids are distinct", function()
    local a, b, c = os.startTimer(0.01), os.startTimer(0.01), os.startTimer(0.01)
    t.ok(a ~= b and b ~= c and a ~= c, "distinct ids")
    local got = {}
    for _ = 1, 3 do
        local _, id = os.pullEvent("timer")
        got[id] = true
    end
    t.ok(got[a] and got[b] and got[c], "all three fired")
end)

t.test("a shorter timer fires before a longer one", function()
    local long = os.startTimer(0.4)
    local short = os.startTimer(0.02)
    local _, first = os.pullEvent("timer")
    t.eq(first, short, "first timer")
    local _, second = os.pullEvent("timer")
    t.eq(second, long, "second timer")
end)

t.test("a cancelled timer never fires", function()
    local cancelled = os.startTimer(0.02)
    os.cancelTimer(cancelled)
    local later = os.startTimer(0.3)
    local ids = {}
    for _ = 1, 10 do
        local _, id = os.pullEvent("timer")
        ids[#ids + 1] = id
        if id == later then break end
    end
    t.eq(ids[#ids], later, "later timer fired")
    t.ok(not contains(ids, cancelled), "cancelled timer did not fire")
end)

t.test("cancelTimer ignores unknown and already-fired ids", function()
    local id = os.startTimer(0.01)
    local _, fired = os.pullEvent("timer")
    t.eq(fired, id, "fired")
    os.cancelTimer(id)
    os.cancelTimer(123456789)
    os.cancelTimer(-5)
end)

t.test("startTimer and cancelTimer argument errors", function()
    t.raises("bad argument #1 (expected number, got no value)", os.startTimer)
    t.raises("bad argument #1 (expected number, got string)", os.startTimer, "soon")
    t.raises("bad argument #1 (expected number, got no value)", os.cancelTimer)
    t.raises("bad argument #1 (expected number, got table)", os.cancelTimer, {})
end)

t.test("startTimer accepts a numeric string", function()
    local id = os.startTimer("0.01")
    local _, fired = os.pullEvent("timer")
    t.eq(fired, id, "id")
end)

-- sleep -------------------------------------------------------------------------------------

t.test("sleep waits at least the given time", function()
    local e0, c0 = os.epoch("utc"), os.clock()
    sleep(0.2)
    local waited_ms = os.epoch("utc") - e0
    t.ok(waited_ms >= 190, "slept >= 0.19 s by epoch (" .. waited_ms .. " ms)")
    t.ok(os.clock() - c0 >= 0.19, "slept >= 0.19 s by clock")
end)

t.test("os.sleep is sleep", function()
    t.eq(os.sleep, sleep, "alias")
end)

t.test("sleep drops other events that arrive while it waits", function()
    os.queueEvent("during_sleep")
    sleep(0.01)
    os.queueEvent("after_sleep")
    t.eq((os.pullEvent()), "after_sleep", "next event")
end)

t.test("sleep with a bad argument raises the cc.expect error (no name under pcall)", function()
    t.raises("bad argument #1 (number expected, got string)", sleep, "x")
    t.raises("bad argument #1 (number expected, got table)", sleep, {})
end)

t.test("sleep called by name names itself in the error", function()
    t.raises_match("bad argument #1 to 'sleep' %(number expected, got string%)$", function()
        sleep("x")
    end)
end)

t.test("sleep() with no argument returns after a tick", function()
    sleep()
    sleep(nil)
end)

-- Clocks ------------------------------------------------------------------------------------

t.test("os.clock is a non-negative number that increases", function()
    local c1 = os.clock()
    t.eq(type(c1), "number", "type")
    t.ok(c1 >= 0, "non-negative")
    sleep(0.05)
    local c2 = os.clock()
    t.ok(c2 > c1, ("clock increased (%s -> %s)"):format(c1, c2))
    t.ok(c2 - c1 >= 0.04, "by at least the sleep")
    -- Millisecond resolution.
    local ms = c2 * 1000
    t.ok(math.abs(ms - math.floor(ms + 0.5)) < 1e-6, "whole milliseconds: " .. c2)
end)

t.test("os.epoch('utc') is in milliseconds and matches os.epoch('local')", function()
    local utc, loc = os.epoch("utc"), os.epoch("local")
    t.ok(utc > 1.6e12 and utc < 1e13, "utc looks like Unix milliseconds: " .. utc)
    t.ok(math.abs(loc - utc) <= 14 * 3600 * 1000 + 1000, "local within a time zone of utc")
    t.eq(utc % 1, 0, "whole milliseconds")
    local secs = os.time("utc")
    t.ok(math.abs(utc / 1000 - secs) < 2, ("epoch/1000 %s ~ os.time('utc') %s"):format(utc / 1000, secs))
end)

t.test("os.epoch('utc') advances in milliseconds", function()
    local a = os.epoch("utc")
    sleep(0.1)
    local d = os.epoch("utc") - a
    t.ok(d >= 90 and d < 5000, "elapsed ms: " .. d)
end)

t.test("os.epoch kind is case-insensitive", function()
    local a, b = os.epoch("utc"), os.epoch("UTC")
    t.ok(math.abs(b - a) < 1000, "UTC ~ utc")
end)

t.test("os.epoch with an unknown kind raises 'Unsupported operation'", function()
    t.raises("Unsupported operation", os.epoch, "bogus")
    t.raises("Unsupported operation", os.epoch, "")
end)

t.test("os.epoch() defaults to in-game milliseconds starting at 06:00 on day 1", function()
    local e = os.epoch()
    t.eq(type(e), "number", "type")
    local start = 86400000 + 6 * 3600000
    t.ok(e >= start, "after day 1 06:00: " .. e)
    -- 72 in-game ms per real ms.
    t.ok(e <= start + 72 * 1000 * (os.clock() + 1), "not far past the start: " .. e)
    t.ok(math.abs(os.epoch("ingame") - e) < 72 * 1000, "ingame is the default")
end)

t.test("os.epoch('nano') is a number", function()
    local n = os.epoch("nano")
    t.eq(type(n), "number", "type")
    t.ok(n >= 0 and n < 2 ^ 53, "masked to 53 bits")
end)

t.test("os.time() and os.day() give the in-game hour and day", function()
    local h, d = os.time(), os.day()
    t.ok(h >= 6 and h < 7, "in-game hour near 6: " .. h)
    t.eq(d, 1, "in-game day")
    t.ok(math.abs(os.time("ingame") - h) < 1, "time('ingame')")
end)

t.test("os.time('utc') and os.day('utc') count real seconds and days", function()
    local ms = os.epoch("utc")
    local s, d = os.time("utc"), os.day("utc")
    t.ok(math.abs(s - ms / 1000) < 2, "seconds")
    t.eq(s % 1, 0, "whole seconds")
    t.eq(d, math.floor(s / 86400), "days")
    t.raises("Unsupported operation", os.time, "bogus")
    t.raises("Unsupported operation", os.day, "bogus")
end)

t.test("os.time(table) keeps Lua's meaning", function()
    local stamp = os.time({ year = 2000, month = 1, day = 2, hour = 12, min = 34, sec = 56 })
    t.eq(type(stamp), "number", "type")
    local back = os.date("*t", stamp)
    t.eq(back.year, 2000, "year")
    t.eq(back.month, 1, "month")
    t.eq(back.day, 2, "day")
    t.eq(back.hour, 12, "hour")
    t.eq(back.min, 34, "min")
    t.eq(back.sec, 56, "sec")
    local next_day = os.time({ year = 2000, month = 1, day = 3, hour = 12, min = 34, sec = 56 })
    t.eq(next_day - stamp, 86400, "one day apart")
end)

-- parallel ----------------------------------------------------------------------------------

t.test("parallel.waitForAny returns the index of the function that finished", function()
    local idx = parallel.waitForAny(
        function() os.pullEvent("never_happens") end,
        function() end,
        function() os.pullEvent("never_happens") end
    )
    t.eq(idx, 2, "index")
end)

t.test("parallel.waitForAny returns when the first function finishes after an event", function()
    local ran_third = false
    local idx = parallel.waitForAny(
        function() os.pullEvent("never_happens") end,
        function()
            os.queueEvent("go_first")
            os.pullEvent("go_second")
        end,
        function()
            os.pullEvent("go_first")
            ran_third = true
        end
    )
    t.eq(idx, 3, "index")
    t.ok(ran_third, "third ran")
end)

t.test("parallel.waitForAll runs every function to completion, each with its own filter", function()
    local log = {}
    parallel.waitForAll(
        function()
            local _, v = os.pullEvent("for_a")
            log[#log + 1] = "a" .. v
        end,
        function()
            local _, v = os.pullEvent("for_b")
            log[#log + 1] = "b" .. v
        end,
        function()
            os.queueEvent("for_b", 1)
            os.queueEvent("for_a", 2)
            log[#log + 1] = "c"
        end
    )
    t.eq(table.concat(log, ","), "c,b1,a2", "order")
end)

t.test("parallel coroutines each receive a copy of every event", function()
    local a, b = 0, 0
    parallel.waitForAll(
        function() for _ = 1, 3 do os.pullEvent("shared"); a = a + 1 end end,
        function() for _ = 1, 3 do os.pullEvent("shared"); b = b + 1 end end,
        function() for _ = 1, 3 do os.queueEvent("shared") end end
    )
    t.eq(a, 3, "first got all")
    t.eq(b, 3, "second got all")
end)

t.test("an error in a parallel function propagates", function()
    t.raises("boom", parallel.waitForAny, function() os.pullEvent("never_happens") end,
        function() error("boom", 0) end)
    t.raises("boom2", parallel.waitForAll, function() error("boom2", 0) end)
end)

t.test("terminate reaches a filtered coroutine inside parallel", function()
    local got
    parallel.waitForAny(function()
        got = os.pullEventRaw("never_happens")
    end, function()
        os.queueEvent("terminate")
        os.pullEvent("never_happens_either")
    end)
    t.eq(got, "terminate", "event")
end)

-- CraftOS-PC's ROM parallel API checks every argument up to select("#", ...) and words the error
-- "expected function, got T" (newer CC: Tweaked says "function expected"; we follow CraftOS-PC),
-- blaming the caller of waitForAny/waitForAll.
t.test("parallel rejects non-functions with CraftOS-PC's error wording", function()
    t.raises("bad argument #1 (expected function, got string)", parallel.waitForAny, "x")
    t.raises("bad argument #2 (expected function, got number)", parallel.waitForAny, function() end, 2)
    t.raises("bad argument #2 (expected function, got nil)", parallel.waitForAll, function() end, nil)
end)

t.test("parallel's argument error blames the caller's line", function()
    t.raises_match("os_events%.lua:%d+: bad argument #1 %(expected function, got string%)$", function()
        parallel.waitForAny("x")
    end)
end)

t.test("parallel with no functions returns 0 at once", function()
    t.eq(parallel.waitForAny(), 0, "waitForAny()")
    t.eq(parallel.waitForAll(), 0, "waitForAll()")
end)

t.test("parallel.waitForAll returns the index of the function that finished last", function()
    local idx = parallel.waitForAll(
        function() os.pullEvent("last_one") end,
        function() os.queueEvent("last_one") end,
        function() end
    )
    t.eq(idx, 1, "index")
end)

-- Script arguments --------------------------------------------------------------------------

t.test("the script receives no `...` and an `arg` table naming itself", function()
    t.eq(script_args.n, 0, "no arguments")
    t.eq(type(arg), "table", "arg")
    t.eq(type(arg[0]), "string", "arg[0]")
    t.ok(arg[0]:match("os_events%.lua$"), "arg[0] is the script path: " .. arg[0])
    t.eq(#arg, 0, "#arg")
end)

-- Nothing leaks into the next script: queue is empty except what we queue now.
t.test("the queue is empty of stale events", function()
    os.queueEvent("probe")
    local ev = pull_until("probe", 5)
    t.eq(ev[1], "probe", "probe")
end)

t.done()
