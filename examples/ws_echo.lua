-- WebSocket echo server: every message comes back to its sender, text or binary.
-- Run it:  ccserve examples/ws_echo.lua [PORT]     (then connect to ws://127.0.0.1:PORT/)
local port = tonumber(... or 8081)
local server = assert(http.websocketServer(port))
print("WebSocket echo on port " .. server.port .. "; press Ctrl+C to stop")
local clients = {} -- clientID -> handle
while true do
    local event, a, b, c = os.pullEvent()
    if event == "websocket_server_connect" then -- a: port, b: handle
        clients[b.clientID] = b
    elseif event == "websocket_server_message" then -- a: clientID, b: message, c: binary
        local handle = clients[a]
        if handle then handle.send(b, c) end
    elseif event == "websocket_server_closed" then -- a: clientID, b: reason, c: code
        clients[a] = nil
    end
end
