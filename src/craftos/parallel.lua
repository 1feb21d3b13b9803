-- The `parallel` API: run functions as coroutines side by side, each receiving the events its
-- own `os.pullEvent` filter asks for, as CraftOS's parallel API does.
local function run(functions, wait_for_all)
    local routines, filters = {}, {}
    for i = 1, functions.n do
        local fn = functions[i]
        if type(fn) ~= "function" then
            -- CraftOS-PC's wording (its ROM says "expected function"), no function name,
            -- blamed on the caller of waitForAny/waitForAll.
            error(("bad argument #%d (expected function, got %s)"):format(i, type(fn)), 3)
        end
        routines[i] = coroutine.create(fn)
    end
    local alive = #routines
    if alive == 0 then return 0 end
    local event = { n = 0 }
    while true do
        for i = 1, #routines do
            local co = routines[i]
            if co and (filters[i] == nil or filters[i] == event[1] or event[1] == "terminate") then
                local ok, filter = coroutine.resume(co, table.unpack(event, 1, event.n))
                if not ok then error(filter, 0) end
                filters[i] = filter
                if coroutine.status(co) == "dead" then
                    routines[i] = false
                    alive = alive - 1
                    if not wait_for_all or alive == 0 then return i end
                end
            end
        end
        -- Let go of the event while waiting for the next: handles in it that every routine has
        -- dropped can then be collected (and a forgotten response answered).
        event = nil
        event = table.pack(coroutine.yield())
    end
end

parallel = {}

--- Runs the functions until any one of them returns; returns its index.
function parallel.waitForAny(...)
    local index = run(table.pack(...), false) -- not a tail call: errors blame our caller
    return index
end

--- Runs the functions until all of them have returned; returns the index of the last one.
function parallel.waitForAll(...)
    local index = run(table.pack(...), true)
    return index
end
