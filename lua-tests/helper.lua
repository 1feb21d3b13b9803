-- Assertion helper for lua-tests/*.lua. Load it with:
--   local t = dofile((arg[0]:match("^(.*)[/\\]") or ".") .. "/helper.lua")
-- Then t.test("name", function() ... end) for each case, and t.done() at the end, which prints
-- "N passed, M failed" and raises an error (non-zero exit) if anything failed.
local t = { passed = 0, failed = 0 }

local function fmt(v)
    if type(v) == "string" then return string.format("%q", v) end
    return tostring(v)
end

--- Fails unless a == b (raw equality).
function t.eq(actual, expected, what)
    if actual ~= expected then
        error(("%s: expected %s, got %s"):format(what or "value", fmt(expected), fmt(actual)), 2)
    end
end

--- Fails unless v is truthy.
function t.ok(v, what)
    if not v then error((what or "condition") .. " was " .. fmt(v), 2) end
    return v
end

--- Fails unless fn(...) raises an error whose message equals `message` exactly.
function t.raises(message, fn, ...)
    local ok, err = pcall(fn, ...)
    if ok then error("expected error " .. fmt(message) .. ", but the call succeeded", 2) end
    if err ~= message then
        error(("expected error %s, got %s"):format(fmt(message), fmt(err)), 2)
    end
end

--- Fails unless fn(...) raises an error whose message matches the Lua pattern.
function t.raises_match(pattern, fn, ...)
    local ok, err = pcall(fn, ...)
    if ok then error("expected an error matching " .. fmt(pattern) .. ", but the call succeeded", 2) end
    if type(err) ~= "string" or not err:find(pattern) then
        error(("expected an error matching %s, got %s"):format(fmt(pattern), fmt(err)), 2)
    end
end

--- Runs one named case; a failure is reported and counted, the next case still runs.
function t.test(name, fn)
    local ok, err = pcall(fn)
    if ok then
        t.passed = t.passed + 1
        print("ok   " .. name)
    else
        t.failed = t.failed + 1
        print("FAIL " .. name .. ": " .. tostring(err))
    end
end

--- Prints the summary line and fails the script if any case failed.
function t.done()
    print(("%d passed, %d failed"):format(t.passed, t.failed))
    if t.failed > 0 then error(t.failed .. " test(s) failed", 0) end
end

--- Runs `server(port)` and `client(base_url)` side by side on a fresh listener (port 0):
--- the server function receives the port; returns when the client function returns.
--- The listener is removed afterwards.
function t.with_listener(server, client)
    local port = http.addListener(0)
    local base = "http://127.0.0.1:" .. port
    local ok, err = pcall(parallel.waitForAny, function() server(port) end, function() client(base, port) end)
    http.removeListener(port)
    if not ok then error(err, 0) end
end

--- Runs `handler(req, res)` for every request while `client(base, port)` runs (see
--- `with_listener`). The response is closed after the handler if it did not close it. An error in
--- the handler fails the test (after the client got its answer).
function t.exchange(handler, client)
    local err
    t.with_listener(function()
        while true do
            local _, _, req, res = os.pullEvent("http_request")
            local ok, e = pcall(handler, req, res)
            if not ok and not err then err = e end
            pcall(res.close)
        end
    end, client)
    if err then error("in handler: " .. tostring(err), 0) end
end

return t
