-- A fan controller, written as for a NodeMCU board: a timer reads the temperature sensor (on the
-- ADC) every second and switches the fan (on a GPIO pin) above a threshold; a small web page and
-- a JSON API show the state and change the threshold, which is kept in a file across restarts.
--
-- Run it:  ccserve --nodemcu --root /some/dir examples/nodemcu_fan.lua [PORT]
--   GET  /              the page
--   GET  /api/state     {"celsius":..,"fan":true|false,"threshold":..,"heap":..,"uptime":..}
--   POST /api/threshold {"threshold": 30}  (also stored in fan.json)
-- Under ccserve the ADC reads 0 and the pin remembers what was written (see README, NodeMCU's
-- API); on a board the same file drives the real sensor and fan.
local port = tonumber(... or 8080)
local FAN_PIN = 1
local SETTINGS = "fan.json"

local settings = { threshold = 28 }
if file.exists(SETTINGS) then
    local ok, saved = pcall(sjson.decode, file.getcontents(SETTINGS))
    if ok and type(saved) == "table" and type(saved.threshold) == "number" then
        settings = saved
    end
end

local function save()
    local f = file.open(SETTINGS, "w")
    if f then
        f:write(sjson.encode(settings))
        f:close()
    end
end

gpio.mode(FAN_PIN, gpio.OUTPUT)
local celsius = 0

-- A 10 mV/°C sensor on the 1 V ADC: 1024 steps per volt.
local function read_sensor()
    celsius = adc.read(0) * 100 / 1024
    gpio.write(FAN_PIN, celsius > settings.threshold and gpio.HIGH or gpio.LOW)
end
read_sensor()
tmr.create():alarm(1000, tmr.ALARM_AUTO, read_sensor)

local function state()
    return sjson.encode({
        celsius = celsius,
        fan = gpio.read(FAN_PIN) == gpio.HIGH,
        threshold = settings.threshold,
        heap = node.heap(),
        uptime = tmr.time(),
    })
end

local PAGE = [[<!doctype html><title>Fan</title>
<p>Temperature: <b id=c>?</b> &deg;C, fan <b id=f>?</b>, threshold <b id=t>?</b> &deg;C</p>
<form onsubmit="fetch('/api/threshold',{method:'POST',body:JSON.stringify({threshold:+this.v.value})}).then(show);return false">
<input name=v type=number> <button>Set threshold</button></form>
<script>function show(){fetch('/api/state').then(r=>r.json()).then(s=>{c.textContent=s.celsius;
f.textContent=s.fan?'on':'off';t.textContent=s.threshold})}show();setInterval(show,2000)</script>]]

require("httpserver").createServer(port, function(req, res)
    if req.method == "GET" and req.url == "/" then
        res:send_header("Content-Type", "text/html")
        res:finish(PAGE)
    elseif req.method == "GET" and req.url == "/api/state" then
        res:send_header("Content-Type", "application/json")
        res:finish(state())
    elseif req.method == "POST" and req.url == "/api/threshold" then
        local body = {}
        req.ondata = function(_, chunk)
            if chunk then
                body[#body + 1] = chunk
                return
            end
            local ok, new = pcall(sjson.decode, table.concat(body))
            if not ok or type(new) ~= "table" or type(new.threshold) ~= "number" then
                res:send_header("Content-Type", "application/json")
                res:finish('{"error":"send {\\"threshold\\": <number>}"}', 400)
                return
            end
            settings.threshold = new.threshold
            save()
            read_sensor()
            res:send_header("Content-Type", "application/json")
            res:finish(state())
        end
    else
        res:finish("not found\n", 404)
    end
end)

print(("Fan controller on port %d (heap %d bytes); press Ctrl+C to stop"):format(port, node.heap()))
