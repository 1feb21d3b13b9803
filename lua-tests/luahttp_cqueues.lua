-- cqueues as ccserve provides it for lua-http scripts: controllers, wrap/attach, loop/step,
-- sleep, poll, conditions, running, monotime, errno, and clear errors for what is not there.
local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")
local cqueues = require("cqueues")
local cc = require("cqueues.condition")
local ce = require("cqueues.errno")

t.test("wrap runs coroutines side by side; loop returns once all have ended", function()
    local cq = cqueues.new()
    local log = {}
    cq:wrap(function() log[#log + 1] = "a1"; cqueues.sleep(0.02); log[#log + 1] = "a2" end)
    cq:wrap(function(x) log[#log + 1] = "b" .. x end, 1)
    t.eq(cq:count(), 2, "count")
    t.eq(cq:empty(), false, "not empty")
    t.eq(cq:loop(), true, "loop")
    t.eq(table.concat(log, " "), "a1 b1 a2", "order")
    t.eq(cq:empty(), true, "empty after")
end)

t.test("sleep suspends only its coroutine, for about the time asked", function()
    local cq = cqueues.new()
    local order = {}
    local start = cqueues.monotime()
    -- The sleeps end 0.99 s apart: a loaded machine cannot swap them.
    cq:wrap(function() cqueues.sleep(1); order[#order + 1] = "slow" end)
    cq:wrap(function() cqueues.sleep(0.01); order[#order + 1] = "fast" end)
    assert(cq:loop())
    local took = cqueues.monotime() - start
    t.eq(table.concat(order, " "), "fast slow", "the shorter sleep ends first")
    t.ok(took >= 0.99 and took < 10, "took " .. took)
end)

t.test("conditions: wait until signalled, signal(n) wakes n, wait(timeout) times out", function()
    local cq = cqueues.new()
    local cond = cc.new()
    local woken = 0
    for _ = 1, 3 do
        cq:wrap(function() if cond:wait() then woken = woken + 1 end end)
    end
    local timed_out
    cq:wrap(function() timed_out = not cc.new():wait(0.01) end)
    cq:wrap(function()
        cqueues.sleep(0.02)
        cond:signal(2)
        cqueues.sleep(0.02)
        t.eq(woken, 2, "two woken by signal(2)")
        cond:signal()
    end)
    assert(cq:loop())
    t.eq(woken, 3, "all woken in the end")
    t.eq(timed_out, true, "wait with a timeout returns false")
    t.eq(cc.type(cond), "condition", "cc.type")
    t.eq(cqueues.type(cond), "condition", "cqueues.type of a condition")
    t.eq(cqueues.type(cq), "controller", "cqueues.type of a controller")
    t.eq(cqueues.type({}), nil, "cqueues.type of anything else")
end)

t.test("poll returns the signalled condition, or the timeout", function()
    local cq = cqueues.new()
    local a, b = cc.new(), cc.new()
    local got, timed
    cq:wrap(function() got = cqueues.poll(a, b, 5) end)
    cq:wrap(function() timed = cqueues.poll(a, 0.01) end)
    cq:wrap(function() cqueues.sleep(0.05); b:signal() end)
    assert(cq:loop())
    t.ok(got == b, "the signalled condition")
    t.eq(timed, 0.01, "the timeout")
    t.raises_match("only conditions and timeouts", function() cqueues.poll({}) end)
end)

t.test("running tells the controller inside a coroutine, and main outside", function()
    local cq = cqueues.new()
    local inside, main
    cq:wrap(function() inside, main = cqueues.running() end)
    assert(cq:loop())
    t.ok(inside == cq, "the controller")
    t.eq(main, false, "not main inside")
    local none, ismain = cqueues.running()
    t.eq(none, nil, "no controller outside")
    t.eq(ismain, true, "main outside")
end)

t.test("a coroutine's error ends loop with false and the message; the rest goes on later", function()
    local cq = cqueues.new()
    local finished = false
    cq:wrap(function() error("boom", 0) end)
    cq:wrap(function() cqueues.sleep(0.01); finished = true end)
    local ok, err = cq:loop()
    t.eq(ok, false, "loop failed")
    t.eq(err, "boom", "message")
    t.eq(cq:count(), 1, "the other coroutine is still there")
    t.eq(cq:loop(), true, "a second loop finishes it")
    t.eq(finished, true, "finished")
end)

t.test("step runs what is ready and waits at most its timeout", function()
    local cq = cqueues.new()
    local n = 0
    cq:wrap(function() n = n + 1; cqueues.sleep(60); n = n + 1 end)
    local start = cqueues.monotime()
    t.eq(cq:step(0.02), true, "step")
    t.eq(n, 1, "ran to its first wait")
    t.ok(cqueues.monotime() - start < 30, "step returned at its timeout")
    t.eq(cq:empty(), false, "the sleeper is still there")
    t.eq(cq:loop(0.01), true, "loop with a timeout returns")
end)

t.test("attach manages an existing coroutine", function()
    local cq = cqueues.new()
    local ran = false
    cq:attach(coroutine.create(function() cqueues.sleep(0); ran = true end))
    assert(cq:loop())
    t.eq(ran, true, "ran")
    t.raises_match("coroutine expected", function() cq:attach(42) end)
end)

t.test("a loop inside a coroutine waits for its controller while the outer loop drives", function()
    local outer, inner = cqueues.new(), cqueues.new()
    local log = {}
    inner:wrap(function() cqueues.sleep(0.01); log[#log + 1] = "inner" end)
    outer:wrap(function() assert(inner:loop()); log[#log + 1] = "after inner" end)
    assert(outer:loop())
    t.eq(table.concat(log, ","), "inner,after inner", "order")
end)

t.test("CraftOS events still reach coroutines that pull them", function()
    local cq = cqueues.new()
    local got
    cq:wrap(function()
        local _, value = os.pullEvent("custom_event")
        got = value
    end)
    cq:wrap(function() os.queueEvent("custom_event", 42) end)
    assert(cq:loop())
    t.eq(got, 42, "event value")
end)

t.test("sleep outside any coroutine waits while the scheduler runs others", function()
    local cq = cqueues.new()
    local ran = false
    cq:wrap(function() ran = true end)
    cqueues.sleep(0.01)
    t.eq(ran, true, "the wrapped coroutine ran during the sleep")
    assert(cq:loop())
end)

t.test("monotime rises; errno has the usual numbers and messages", function()
    local a = cqueues.monotime()
    cqueues.sleep(0.01)
    t.ok(cqueues.monotime() > a, "rises")
    t.eq(ce.ETIMEDOUT, 110, "ETIMEDOUT")
    t.eq(ce.EPIPE, 32, "EPIPE")
    t.eq(ce.strerror(ce.ETIMEDOUT), "Connection timed out", "strerror")
    t.eq(ce.strerror(ce.EPIPE), "Broken pipe", "strerror")
    t.eq(ce[110], "ETIMEDOUT", "number to name")
    t.eq(ce.strerror(99999), "Unknown error 99999", "unknown")
    t.ok(cqueues.errno == ce, "cqueues.errno")
end)

t.test("what is not supported says so", function()
    t.raises_match("cqueues.socket is not supported by ccserve", function() return cqueues.socket end)
    t.raises_match("not supported", function() cqueues.interpose() end)
    t.eq(cqueues.new():pollfd(), nil, "no file descriptor")
end)

t.done()
