-- http.util: lua-http 0.4's helpers for URIs, query strings, authorities, dates and quoting.
-- Plain Lua (lua-http uses lpeg for some of these); written for ccserve from lua-http's
-- documentation, no lua-http code is used.

local util = {}

-- Accepts a string or a number (as the string library does); anything else is a clear error.
local function check_string(fname, n, v)
    local kind = type(v)
    if kind == "string" then return v end
    if kind == "number" then return tostring(v) end
    error(("bad argument #%d to '%s' (string expected, got %s)"):format(n, fname, kind), 3)
end

local function percent_encode(c)
    return ("%%%02X"):format(c:byte())
end

--- Percent-encodes every byte except letters, digits, `-_.!~*'()` and the URI delimiters
--- `;,/?:@&=+$#` (JavaScript's encodeURI, byte-wise: UTF-8 stays UTF-8 once decoded).
function util.encodeURI(str)
    str = check_string("encodeURI", 1, str)
    return (str:gsub("[^A-Za-z0-9%-_%.!~%*'%(%);,/%?:@&=%+%$#]", percent_encode))
end

--- Percent-encodes every byte except letters, digits and `-_.!~*'()`.
function util.encodeURIComponent(str)
    str = check_string("encodeURIComponent", 1, str)
    return (str:gsub("[^A-Za-z0-9%-_%.!~%*'%(%)]", percent_encode))
end

-- Bytes decodeURI leaves encoded, because decoding them would change the URI's structure.
local structural = {}
for c in ("#$&+,/:;=?@"):gmatch(".") do structural[c:byte()] = true end

--- Decodes %XX escapes, except those of `#$&+,/:;=?@`. A `%` not followed by two hex digits
--- stays as it is.
function util.decodeURI(str)
    str = check_string("decodeURI", 1, str)
    return (str:gsub("%%(%x%x)", function(hex)
        local byte = tonumber(hex, 16)
        if structural[byte] then return nil end -- nil: gsub keeps the escape
        return string.char(byte)
    end))
end

--- Decodes every %XX escape. A `%` not followed by two hex digits stays as it is; `+` is not
--- a space here (as in lua-http).
function util.decodeURIComponent(str)
    str = check_string("decodeURIComponent", 1, str)
    return (str:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

--- Iterator over a query string's `&`-separated pairs: the decoded name and the decoded value,
--- or nil as the value for a pair without `=`. Empty pairs and pairs without a name are skipped.
function util.query_args(str)
    str = check_string("query_args", 1, str)
    local pos, last = 1, #str
    return function()
        while pos <= last do
            local amp = str:find("&", pos, true) or last + 1
            local pair = str:sub(pos, amp - 1)
            pos = amp + 1
            local eq = pair:find("=", 1, true)
            local name = eq and pair:sub(1, eq - 1) or pair
            if name ~= "" then
                local value = eq and util.decodeURIComponent(pair:sub(eq + 1)) or nil
                return util.decodeURIComponent(name), value
            end
        end
        return nil
    end, str, nil
end

--- `name=value` pairs of a table, encoded and joined with `&`, sorted by name.
function util.dict_to_query(dict)
    if type(dict) ~= "table" then
        error(("bad argument #1 to 'dict_to_query' (table expected, got %s)"):format(type(dict)), 2)
    end
    local names = {}
    for name in pairs(dict) do names[#names + 1] = name end
    table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for i, name in ipairs(names) do
        parts[i] = util.encodeURIComponent(name) .. "=" .. util.encodeURIComponent(dict[name])
    end
    return table.concat(parts, "&")
end

--- Resolves `relative_path` against `orig_path` (the directory of `orig_path`, i.e. everything up
--- to its last `/`): `.` segments are dropped, `..` removes one segment (never above the root),
--- empty segments are dropped, a leading `/` in `relative_path` replaces `orig_path` altogether,
--- and a trailing `/` in `relative_path` is kept.
function util.resolve_relative_path(orig_path, relative_path)
    orig_path = check_string("resolve_relative_path", 1, orig_path)
    relative_path = check_string("resolve_relative_path", 2, relative_path)
    local segments, absolute = {}, true
    if relative_path:sub(1, 1) ~= "/" then
        absolute = orig_path:sub(1, 1) == "/"
        -- Only the segments that a "/" follows: the last one is the file, not a directory.
        for segment in orig_path:gmatch("([^/]+)/") do segments[#segments + 1] = segment end
    end
    for segment in relative_path:gmatch("[^/]+") do
        if segment == ".." then
            segments[#segments] = nil
        elseif segment ~= "." then
            segments[#segments + 1] = segment
        end
    end
    local path = table.concat(segments, "/")
    if absolute then
        path = "/" .. path
        if #segments == 0 then return path end
    elseif #segments == 0 then
        return path
    end
    if relative_path:sub(-1) == "/" then path = path .. "/" end
    return path
end

local safe = { GET = true, HEAD = true, OPTIONS = true, TRACE = true }

--- True for the methods RFC 7231 section 4.2.1 calls safe: GET, HEAD, OPTIONS and TRACE.
function util.is_safe_method(method)
    return safe[method] or false
end

-- A dotted-quad IPv4 address; each part 0-255, written with one or two digits, or three
-- starting with 1 or 2 (RFC 3986's dec-octet, as lua-http accepts it).
local function is_ipv4(s)
    local parts = { s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
    if #parts ~= 4 then return false end
    for _, p in ipairs(parts) do
        if #p == 3 then
            if not p:match("^[12]") or tonumber(p) > 255 then return false end
        elseif #p > 3 then
            return false
        end
    end
    return true
end

-- Number of 16-bit groups `part` stands for (colon-separated groups of 1-4 hex digits; the last
-- may be an IPv4 address, worth two), or nil if it is malformed. "" stands for none.
local function ipv6_groups(part, allow_ipv4)
    if part == "" then return 0 end
    local fields = {}
    for field in (part .. ":"):gmatch("([^:]*):") do fields[#fields + 1] = field end
    local n = 0
    for i, field in ipairs(fields) do
        if field:match("^%x%x?%x?%x?$") then
            n = n + 1
        elseif allow_ipv4 and i == #fields and is_ipv4(field) then
            n = n + 2
        else
            return nil
        end
    end
    return n
end

-- An IPv6 address (RFC 4291 text form), optionally with an RFC 6874 zone: "fe80::1%25eth0".
local function is_ipv6(s)
    local zone_at = s:find("%25", 1, true)
    if zone_at then
        local zone = s:sub(zone_at + 3)
        if zone == "" or zone:gsub("%%%x%x", ""):find("[^A-Za-z0-9%-%._~]") then return false end
        s = s:sub(1, zone_at - 1)
    end
    local head, tail = s:match("^(.-)::(.*)$")
    if head then
        if tail:find("::", 1, true) then return false end
        local a, b = ipv6_groups(head, false), ipv6_groups(tail, true)
        return a ~= nil and b ~= nil and a + b <= 7
    end
    return ipv6_groups(s, true) == 8
end

--- True if `str` is an IPv4 address or an IPv6 address (without brackets; a zone is allowed).
function util.is_ip(str)
    if type(str) ~= "string" then return false end
    return is_ipv4(str) or is_ipv6(str)
end

--- Default port of each scheme.
util.scheme_to_port = { http = 80, ws = 80, https = 443, wss = 443 }

--- Splits a Host / :authority value into host and port (a number). Without a port, the
--- scheme's default is used; for an unknown scheme that is `nil, "unknown scheme"`. Brackets
--- around an IPv6 address are removed.
function util.split_authority(authority, scheme)
    authority = check_string("split_authority", 1, authority)
    authority = authority:match("^[ \t]*(.-)[ \t]*$")
    local host, port = authority:match("^(.*):(%d+)$")
    if host then
        port = tonumber(port, 10)
    else
        host = authority
        port = util.scheme_to_port[scheme]
        if port == nil then return nil, "unknown scheme" end
    end
    local inner = host:match("^%[(.*)%]$")
    if inner and is_ipv6(inner) then host = inner end
    return host, port
end

--- Joins host and port into an authority: an IPv6 host is bracketed, and the port is left out
--- when it is nil or the scheme's default.
function util.to_authority(host, port, scheme)
    host = check_string("to_authority", 1, host)
    if host:find(":", 1, true) and not host:match("^%[.*%]$") then
        host = "[" .. host .. "]"
    end
    if port == nil then return host end
    local number = tonumber(port)
    if number == nil or number % 1 ~= 0 then
        error(("bad argument #2 to 'to_authority' (integer expected, got %s)"):format(type(port)), 2)
    end
    if number == util.scheme_to_port[scheme] then return host end
    return ("%s:%d"):format(host, number)
end

local day_names = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local month_names = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }

--- RFC 7231 section 7.1.1.1's date ("Sun, 06 Nov 1994 08:49:37 GMT") for a Unix time in seconds
--- (default: now). English names whatever the C locale.
function util.imf_date(time)
    if time ~= nil and type(time) ~= "number" then
        error(("bad argument #1 to 'imf_date' (number expected, got %s)"):format(type(time)), 2)
    end
    local d = time and os.date("!*t", math.floor(time)) or os.date("!*t")
    return ("%s, %02d %s %04d %02d:%02d:%02d GMT"):format(
        day_names[d.wday], d.day, month_names[d.month], d.year, d.hour, d.min, d.sec)
end

--- `str` itself if it is an HTTP token; otherwise a quoted-string (with `"` and `\` escaped)
--- if every byte may appear in one; otherwise nil (control characters other than tab, DEL).
function util.maybe_quote(str)
    str = check_string("maybe_quote", 1, str)
    if str:match("^[A-Za-z0-9!#%$%%&'%*%+%-%.%^_`|~]+$") then return str end
    if str:find("[\0-\8\10-\31\127]") then return nil end
    return '"' .. str:gsub('[\\"]', "\\%0") .. '"'
end

--- A pcall that can be yielded across. Lua 5.2's own pcall already is.
util.yieldable_pcall = pcall

return util
