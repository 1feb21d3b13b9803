-- Static file server, written the way CraftOS users write one: serves the files under the fs
-- root (ccserve's --root, default this script's directory), index.html for directories, 404 for
-- missing files and 403 for any path with a ".." segment.
-- Run it:  ccserve --root examples/public examples/static_files.lua [PORT]
--   curl http://127.0.0.1:8080/            (examples/public/index.html)
local port = tonumber(... or 8080)

local types = {
    html = "text/html", htm = "text/html", txt = "text/plain", lua = "text/plain",
    css = "text/css", js = "application/javascript", json = "application/json",
    png = "image/png", jpg = "image/jpeg", gif = "image/gif", svg = "image/svg+xml",
}

local function send(res, code, body, ctype)
    res.setStatusCode(code)
    res.setResponseHeader("Content-Type", ctype or "text/plain")
    res.write(body)
    res.close()
end

local function decode(s)
    return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

print("Serving " .. fs.combine("/") .. "/ on port " .. port .. "; press Ctrl+C to stop")
http.listen(port, function(req, res)
    local path = decode((req.getURL():gsub("[?#].*$", "")))
    for segment in path:gmatch("[^/\\]+") do
        if segment == ".." then return send(res, 403, "Forbidden\n") end
    end
    local file = fs.combine("/", path)
    if fs.isDir(file) then file = fs.combine(file, "index.html") end
    if not fs.exists(file) or fs.isDir(file) then
        return send(res, 404, "Not found: " .. path .. "\n")
    end
    local handle = fs.open(file, "rb")
    if not handle then return send(res, 404, "Not found: " .. path .. "\n") end
    local body = handle.readAll()
    handle.close()
    send(res, 200, body, types[file:match("%.(%w+)$") or ""] or "application/octet-stream")
end)
