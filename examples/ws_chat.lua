-- WebSocket chat: every message a client sends is broadcast to all connected clients.
-- Uses server.listen() and handle.receive() in parallel coroutines, one per client.
-- Run it:  ccserve examples/ws_chat.lua [PORT]   (then connect several clients to ws://127.0.0.1:PORT/)
local port = tonumber(... or 8082)
local server = assert(http.websocketServer(port))
print("Chat on port " .. server.port .. "; press Ctrl+C to stop")

local clients = {}   -- clientID -> handle
local count = 0

local function broadcast(text)
    for _, handle in pairs(clients) do pcall(handle.send, text) end
end

-- One coroutine accepts clients; each client gets a coroutine that relays its messages.
-- A new coroutine runs at once until it first waits, so it sees every event after that.
local routines = {}
local function spawn(fn)
    local co = coroutine.create(fn)
    local ok, err = coroutine.resume(co)
    if not ok then error(err, 0) end
    routines[#routines + 1] = co
end

spawn(function()
    while true do
        local handle = server.listen()
        count = count + 1
        local name = "user" .. count
        clients[handle.clientID] = handle
        broadcast(name .. " joined")
        spawn(function()
            while true do
                -- nil once the client has left; an error if it left before we asked (the
                -- connection is already closed, as in CraftOS-PC): both end this client.
                local ok, message = pcall(handle.receive)
                if not ok or message == nil then break end
                broadcast(name .. ": " .. message)
            end
            clients[handle.clientID] = nil
            broadcast(name .. " left")
        end)
    end
end)

-- A tiny scheduler: resume every routine with each event (they filter for themselves).
while true do
    local event = table.pack(os.pullEventRaw())
    if event[1] == "terminate" then server.close() return end
    for i = #routines, 1, -1 do
        local co = routines[i]
        local ok, err = coroutine.resume(co, table.unpack(event, 1, event.n))
        if not ok then error(err, 0) end
        if coroutine.status(co) == "dead" then table.remove(routines, i) end
    end
end
