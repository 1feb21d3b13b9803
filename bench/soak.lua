-- The soak-test server: HTTP echo on the first port argument, WebSocket echo on the second.
local http_port, ws_port = tonumber(arg[1]), tonumber(arg[2])
http.addListener(http_port)
local server = assert(http.websocketServer(ws_port))
local clients = {}
print("READY")
while true do
    local event, a, b, c = os.pullEvent()
    if event == "http_request" then
        local req, res = b, c
        res.write(req.getMethod() .. " " .. req.getURL() .. " " .. #req.readAll())
        res.close()
    elseif event == "websocket_server_connect" then
        clients[b.clientID] = b
    elseif event == "websocket_server_message" then
        if clients[a] then pcall(clients[a].send, b, c) end
    elseif event == "websocket_server_closed" then
        clients[a] = nil
    end
end
