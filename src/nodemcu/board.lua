-- Stand-ins for the board's hardware modules NodeMCU web scripts touch: `wifi`, `gpio`, `adc`.
-- Returns { wifi = ..., gpio = ..., adc = ... }. Constants have the ESP8266 firmware's values.
--
-- wifi: the host is the station, and it is already on its network. The station reports the
-- host's address (`sta.getip`, the got-IP event), its MAC (`sta.getmac`), and status STA_GOTIP
-- while it is in a station mode and the script has not disconnected it. Nothing touches the
-- host's network: configurations are remembered and reported back, never applied (`sta.setip`
-- returns false). The connection a board makes after booting is played once, after the main
-- chunk: the first `sta.config`, `sta.connect`, or registration of a STA_CONNECTED or
-- STA_GOT_IP handler schedules it, and the handlers then registered get the connected and
-- got-IP events, with the firmware's tables. `sta.config` (auto connect) connects anew each
-- time; `sta.connect` does when the station is down; leaving a station mode, `sta.disconnect`
-- and `sta.config{auto = false}` disconnect (STA_DISCONNECTED, reason 8: ASSOC_LEAVE). The
-- access point exists on paper only: `ap.getip` reports 192.168.4.1 (or what `ap.setip` set)
-- while in an AP mode, no client ever joins, so its callbacks never run.
--
-- gpio: pins 0 to 12 remember their mode and the last level written; `read` returns that level,
-- or, never written, 1 for an input with PULLUP and 0 otherwise. `trig` is accepted (checked)
-- and never fires: nothing changes a pin from outside.
--
-- adc: `read(0)` returns 0 (nothing is wired to it), `readvdd33()` 3300 (mV),
-- `force_init_mode` false (no restart needed). Both readings work whatever the mode.
--
-- Functions and sub-modules not listed here raise an error naming them.
local native, support, loop = ...

local expect, post, not_provided = support.expect, loop.post, loop.not_provided
local type, error, tostring, tonumber, pairs, ipairs = type, error, tostring, tonumber, pairs, ipairs
local format, gmatch, find = string.format, string.gmatch, string.find

local function mac_bytes()
    local bytes = {}
    for hex in gmatch(native.mac(), "%x%x") do bytes[#bytes + 1] = tonumber(hex, 16) end
    for i = #bytes + 1, 6 do bytes[i] = 0 end
    return bytes
end

-- Raises "bad argument #i to 'fn' (what expected, got value)" unless `ok`, at `level` (default:
-- the caller of the function that checks).
local function check(ok, i, fn, what, value, level)
    if ok then return end
    local kind = type(value)
    local got = (kind == "string" and format("%q", value)) or ((kind == "number" or kind == "boolean"
        or kind == "nil") and tostring(value)) or kind
    error(format("bad argument #%d to '%s' (%s expected, got %s)", i, fn, what, got), level or 3)
end

local function is_int(n, low, high)
    return type(n) == "number" and n % 1 == 0 and n >= low and n <= high
end

-------------------------------------------------------------------------------------------------
-- wifi
-------------------------------------------------------------------------------------------------
local wifi = {
    NULLMODE = 0, STATION = 1, SOFTAP = 2, STATIONAP = 3,
    STA_IDLE = 0, STA_CONNECTING = 1, STA_WRONGPWD = 2, STA_APNOTFOUND = 3, STA_FAIL = 4,
    STA_GOTIP = 5,
    OPEN = 0, WPA_PSK = 2, WPA2_PSK = 3, WPA_WPA2_PSK = 4,
    PHYMODE_B = 1, PHYMODE_G = 2, PHYMODE_N = 3,
    COUNTRY_AUTO = 0, COUNTRY_MANUAL = 1,
}
local sta, ap = {}, {}
local eventmon = {
    STA_CONNECTED = 0, STA_DISCONNECTED = 1, STA_AUTHMODE_CHANGE = 2, STA_GOT_IP = 3,
    STA_DHCP_TIMEOUT = 4, AP_STACONNECTED = 5, AP_STADISCONNECTED = 6, AP_PROBEREQRECVED = 7,
    WIFI_MODE_CHANGED = 8,
    reason = {
        UNSPECIFIED = 1, AUTH_EXPIRE = 2, AUTH_LEAVE = 3, ASSOC_EXPIRE = 4, ASSOC_TOOMANY = 5,
        NOT_AUTHED = 6, NOT_ASSOCED = 7, ASSOC_LEAVE = 8, ASSOC_NOT_AUTHED = 9,
        DISASSOC_PWRCAP_BAD = 10, DISASSOC_SUPCHAN_BAD = 11, IE_INVALID = 13, MIC_FAILURE = 14,
        ["4WAY_HANDSHAKE_TIMEOUT"] = 15, GROUP_KEY_UPDATE_TIMEOUT = 16, IE_IN_4WAY_DIFFERS = 17,
        GROUP_CIPHER_INVALID = 18, PAIRWISE_CIPHER_INVALID = 19, AKMP_INVALID = 20,
        UNSUPP_RSN_IE_VERSION = 21, INVALID_RSN_IE_CAP = 22, ["802_1X_AUTH_FAILED"] = 23,
        CIPHER_SUITE_REJECTED = 24, BEACON_TIMEOUT = 200, NO_AP_FOUND = 201, AUTH_FAIL = 202,
        ASSOC_FAIL = 203, HANDSHAKE_TIMEOUT = 204,
    },
}
wifi.sta, wifi.ap, wifi.eventmon = sta, ap, eventmon
local ev = eventmon

local CHANNEL, NO_BSSID = 1, "ff:ff:ff:ff:ff:ff"
local mode, phymode = wifi.STATION, wifi.PHYMODE_N
local station = { ssid = "ccserve", pwd = "", auto = true }
local linked = true     -- false once the script disconnected the station
local delivered = false -- the boot connection's events have been played
local pending = false   -- a connection's events are scheduled
local hostname
local access_point = {
    ssid = (function()
        local m = mac_bytes()
        return format("NODE_%02X%02X%02X", m[4], m[5], m[6])
    end)(),
    pwd = "", auth = wifi.OPEN, channel = 6, hidden = false, max = 4, beacon = 100,
    ip = "192.168.4.1", netmask = "255.255.255.0", gateway = "192.168.4.1",
}
local handlers = {} -- eventmon event -> function(T)

local function station_on()
    return linked and (mode == wifi.STATION or mode == wifi.STATIONAP)
end

local function host_ip()
    local ip, netmask, gateway = native.host_ip()
    return ip or "127.0.0.1", netmask or "0.0.0.0", gateway or "0.0.0.0"
end

local function fire(event, info)
    local handler = handlers[event]
    if handler then handler(info) end
end

-- Schedules the events of joining the network: both handlers run from one task, each protected
-- (an error in one does not skip the other).
local function schedule_connection()
    if pending then return end
    pending = true
    post(function()
        pending, delivered = false, true
        if not station_on() then return end
        loop.call(fire, ev.STA_CONNECTED, { SSID = station.ssid, BSSID = station.bssid or NO_BSSID, channel = CHANNEL })
        local ip, netmask, gateway = host_ip()
        loop.call(fire, ev.STA_GOT_IP, { IP = ip, netmask = netmask, gateway = gateway })
    end)
end

-- Reports the station going down (or coming up) after a change made while it was `was_on`
-- (joined to the network `left`, by default the configured one).
local function changed(was_on, left)
    local on = station_on()
    if was_on and not on then
        left = left or station
        post(fire, ev.STA_DISCONNECTED, {
            SSID = left.ssid, BSSID = left.bssid or NO_BSSID, reason = ev.reason.ASSOC_LEAVE,
        })
    elseif on and not was_on then
        schedule_connection()
    end
end

function wifi.setmode(new_mode)
    check(is_int(new_mode, 0, 3), 1, "setmode", "wifi mode (0 to 3)", new_mode)
    local old, was_on = mode, station_on()
    mode = new_mode
    if old ~= new_mode then post(fire, ev.WIFI_MODE_CHANGED, { old_mode = old, new_mode = new_mode }) end
    changed(was_on)
    return mode
end

function wifi.getmode() return mode end
wifi.getdefaultmode = wifi.getmode
function wifi.getchannel() return CHANNEL end

function wifi.setphymode(m)
    check(is_int(m, 1, 3), 1, "setphymode", "wifi.PHYMODE_B, _G or _N", m)
    phymode = m
    return phymode
end

function wifi.getphymode() return phymode end

local sta_callbacks = {
    connected_cb = ev.STA_CONNECTED, disconnected_cb = ev.STA_DISCONNECTED,
    authmode_change_cb = ev.STA_AUTHMODE_CHANGE, got_ip_cb = ev.STA_GOT_IP,
    dhcp_timeout_cb = ev.STA_DHCP_TIMEOUT,
}

-- config(cfg), or the older config(ssid, pwd[, auto[, bssid]]): true.
function sta.config(cfg, ...)
    if type(cfg) ~= "table" then
        local pwd, auto, bssid = ...
        cfg = { ssid = cfg, pwd = pwd, auto = auto ~= 0 and auto ~= false, bssid = bssid }
    end
    check(type(cfg.ssid) == "string" and #cfg.ssid <= 32, 1, "config", "ssid of at most 32 bytes", cfg.ssid)
    local pwd = cfg.pwd or ""
    check(type(pwd) == "string" and #pwd <= 64, 1, "config", "pwd of at most 64 bytes", cfg.pwd)
    check(cfg.bssid == nil or type(cfg.bssid) == "string", 1, "config", "bssid string", cfg.bssid)
    for field, event in pairs(sta_callbacks) do
        local f = cfg[field]
        check(f == nil or type(f) == "function", 1, "config", field .. " function", f)
        if f then handlers[event] = f end
    end
    local was_on, old = station_on(), station
    station = { ssid = cfg.ssid, pwd = pwd, bssid = cfg.bssid, auto = cfg.auto ~= false }
    linked = station.auto
    if station_on() then schedule_connection() else changed(was_on, old) end
    return true
end

function sta.connect(connected_cb)
    expect(1, connected_cb, "function", "nil")
    if connected_cb then handlers[ev.STA_CONNECTED] = connected_cb end
    local was_on = station_on()
    linked = true
    if not delivered and station_on() then schedule_connection() else changed(was_on) end
end

function sta.disconnect(disconnected_cb)
    expect(1, disconnected_cb, "function", "nil")
    if disconnected_cb then handlers[ev.STA_DISCONNECTED] = disconnected_cb end
    local was_on = station_on()
    linked = false
    changed(was_on)
end

function sta.autoconnect(auto)
    expect(1, auto, "number")
    station.auto = auto ~= 0
end

function sta.status()
    return station_on() and wifi.STA_GOTIP or wifi.STA_IDLE
end

-- getip(): the host's address, netmask, gateway ("0.0.0.0" when unknown); nil when the station
-- is down.
function sta.getip()
    if station_on() then return host_ip() end
    return nil
end

function sta.setip(cfg)
    expect(1, cfg, "table")
    return false -- the host's address is not ccserve's to change
end

function sta.getmac() return native.mac() end
function sta.getrssi() return station_on() and -50 or nil end

-- getconfig([return_table]): ssid, pwd, bssid_set (0/1), bssid; or them in a table.
function sta.getconfig(return_table)
    local bssid_set = station.bssid ~= nil
    if return_table then
        return {
            ssid = station.ssid, pwd = station.pwd ~= "" and station.pwd or nil,
            bssid_set = bssid_set, bssid = station.bssid or NO_BSSID,
        }
    end
    return station.ssid, station.pwd, bssid_set and 1 or 0, station.bssid or NO_BSSID
end
sta.getdefaultconfig = sta.getconfig

function sta.gethostname()
    if not hostname then
        local m = mac_bytes()
        hostname = format("NODE-%X%X%X", m[4], m[5], m[6])
    end
    return hostname
end

-- sethostname(name): letters, digits and '-', at most 32, starting and ending alphanumeric.
function sta.sethostname(name)
    expect(1, name, "string")
    if #name > 32 or not find(name, "^%w[%w%-]*$") or find(name, "%-$") then return false end
    hostname = name
    return true
end

local ap_callbacks = {
    staconnected_cb = ev.AP_STACONNECTED, stadisconnected_cb = ev.AP_STADISCONNECTED,
    probereq_cb = ev.AP_PROBEREQRECVED,
}

function ap.config(cfg)
    expect(1, cfg, "table")
    check(type(cfg.ssid) == "string" and #cfg.ssid >= 1 and #cfg.ssid <= 32, 1, "config",
        "ssid of 1 to 32 bytes", cfg.ssid)
    for field, event in pairs(ap_callbacks) do
        local f = cfg[field]
        check(f == nil or type(f) == "function", 1, "config", field .. " function", f)
        if f then handlers[event] = f end
    end
    for _, field in ipairs({ "ssid", "pwd", "auth", "channel", "hidden", "max", "beacon" }) do
        if cfg[field] ~= nil then access_point[field] = cfg[field] end
    end
    return true
end

function ap.getconfig(return_table)
    local c = access_point
    local pwd = c.pwd ~= "" and c.pwd or nil
    if return_table then
        return {
            ssid = c.ssid, pwd = pwd, auth = c.auth, channel = c.channel, hidden = c.hidden,
            max = c.max, beacon = c.beacon,
        }
    end
    return c.ssid, pwd
end
ap.getdefaultconfig = ap.getconfig

function ap.getip()
    if mode ~= wifi.SOFTAP and mode ~= wifi.STATIONAP then return nil end
    return access_point.ip, access_point.netmask, access_point.gateway
end

function ap.setip(cfg)
    expect(1, cfg, "table")
    for _, field in ipairs({ "ip", "netmask", "gateway" }) do
        check(cfg[field] == nil or type(cfg[field]) == "string", 1, "setip", field .. " string", cfg[field])
        if cfg[field] then access_point[field] = cfg[field] end
    end
    return true
end

-- The access point's MAC: the station's with the locally administered bit flipped, as the
-- ESP8266's two interfaces differ.
function ap.getmac()
    local m = mac_bytes()
    m[1] = m[1] % 4 >= 2 and m[1] - 2 or m[1] + 2
    return format("%02x:%02x:%02x:%02x:%02x:%02x", m[1], m[2], m[3], m[4], m[5], m[6])
end

function ap.getclient() return {} end

-- register(event[, function(T)]): sets (or, without a function, removes) the event's handler.
function eventmon.register(event, handler)
    check(is_int(event, 0, 8), 1, "register", "wifi.eventmon event", event)
    expect(2, handler, "function", "nil")
    handlers[event] = handler
    if handler and not delivered and station_on()
        and (event == ev.STA_CONNECTED or event == ev.STA_GOT_IP) then
        schedule_connection()
    end
end

function eventmon.unregister(event)
    check(is_int(event, 0, 8), 1, "unregister", "wifi.eventmon event", event)
    handlers[event] = nil
end

not_provided(eventmon.reason, "wifi.eventmon.reason")
not_provided(eventmon, "wifi.eventmon")
not_provided(sta, "wifi.sta")
not_provided(ap, "wifi.ap")
not_provided(wifi, "wifi")

-------------------------------------------------------------------------------------------------
-- gpio
-------------------------------------------------------------------------------------------------
local gpio = { INPUT = 0, OUTPUT = 1, INT = 2, OPENDRAIN = 3, LOW = 0, HIGH = 1, FLOAT = 0, PULLUP = 1 }
local pins = {} -- pin -> { mode =, pull =, level = (nil until written) }

local function check_pin(pin, fn, lowest)
    check(is_int(pin, lowest, 12), 1, fn, format("pin %d to 12", lowest), pin, 4)
end

function gpio.mode(pin, pin_mode, pull)
    check_pin(pin, "mode", 0)
    check(is_int(pin_mode, 0, 3), 2, "mode", "gpio.INPUT, OUTPUT, INT or OPENDRAIN", pin_mode)
    if pin == 0 and pin_mode == gpio.INT then error("bad argument #2 to 'mode' (pin 0 has no gpio.INT)", 2) end
    check(pull == nil or is_int(pull, 0, 1), 3, "mode", "gpio.FLOAT or PULLUP", pull)
    local p = pins[pin] or {}
    p.mode, p.pull = pin_mode, pull or gpio.FLOAT
    pins[pin] = p
end

function gpio.write(pin, level)
    check_pin(pin, "write", 0)
    check(level == 0 or level == 1, 2, "write", "level gpio.HIGH or gpio.LOW", level)
    local p = pins[pin] or {}
    p.level = level
    pins[pin] = p
end

function gpio.read(pin)
    check_pin(pin, "read", 0)
    local p = pins[pin]
    if p and p.level then return p.level end
    return p and p.pull == gpio.PULLUP and 1 or 0
end

local trig_types = { up = true, down = true, both = true, low = true, high = true, none = true }

-- trig(pin[, type[, callback]]): checked like the firmware's, then nothing: no pin ever changes.
function gpio.trig(pin, kind, callback)
    check_pin(pin, "trig", 1)
    check(kind == nil or trig_types[kind], 2, "trig", "'up', 'down', 'both', 'low', 'high' or 'none'", kind)
    expect(3, callback, "function", "nil")
end

not_provided(gpio, "gpio")

-------------------------------------------------------------------------------------------------
-- adc
-------------------------------------------------------------------------------------------------
local adc = { INIT_ADC = 0, INIT_VDD33 = 0xff }

function adc.read(channel)
    check(channel == 0, 1, "read", "channel 0", channel)
    return 0
end

function adc.readvdd33() return 3300 end

function adc.force_init_mode(init_mode)
    check(init_mode == adc.INIT_ADC or init_mode == adc.INIT_VDD33, 1, "force_init_mode",
        "adc.INIT_ADC or adc.INIT_VDD33", init_mode)
    return false
end

not_provided(adc, "adc")

return { wifi = wifi, gpio = gpio, adc = adc }
