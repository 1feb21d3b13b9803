-- A small JSON API with routing, the way CraftOS web frameworks structure one: a route table of
-- method + Lua pattern, handlers that get captures, JSON in and out with textutils, and the data
-- kept in a file under the fs root.
-- Run it:  mkdir -p webify-data && ccserve --root webify-data examples/webify_style.lua [PORT]
--   (items are kept in webify-data/items.json)
--   curl http://127.0.0.1:8080/api/items
--   curl -X POST -d '{"name":"apple","qty":3}' http://127.0.0.1:8080/api/items
--   curl http://127.0.0.1:8080/api/items/1
--   curl -X DELETE http://127.0.0.1:8080/api/items/1
local port = tonumber(... or 8080)
local DATA = "/items.json"

local function load_items()
    if not fs.exists(DATA) then return { next_id = 1, items = {} } end
    local f = assert(fs.open(DATA, "r"))
    local data = textutils.unserializeJSON(f.readAll())
    f.close()
    return data or { next_id = 1, items = {} }
end

local function save_items(data)
    local f = assert(fs.open(DATA, "w"))
    f.write(textutils.serializeJSON(data))
    f.close()
end

local db = load_items()

local function reply(res, status, value)
    res.setStatusCode(status)
    res.setResponseHeader("Content-Type", "application/json")
    res.write(textutils.serializeJSON(value))
end

local routes = {
    { "GET", "^/api/items$", function(req, res)
        local list = {}
        for _, item in pairs(db.items) do list[#list + 1] = item end
        table.sort(list, function(a, b) return a.id < b.id end)
        if #list == 0 then list = textutils.empty_json_array end
        reply(res, 200, list)
    end },
    { "POST", "^/api/items$", function(req, res)
        local item, err = textutils.unserializeJSON(req.readAll())
        if type(item) ~= "table" or type(item.name) ~= "string" then
            return reply(res, 400, { error = err or "expected an object with a name" })
        end
        item.id = db.next_id
        db.next_id = db.next_id + 1
        db.items[tostring(item.id)] = item
        save_items(db)
        reply(res, 201, item)
    end },
    { "GET", "^/api/items/(%d+)$", function(req, res, id)
        local item = db.items[id]
        if item then reply(res, 200, item) else reply(res, 404, { error = "no item " .. id }) end
    end },
    { "DELETE", "^/api/items/(%d+)$", function(req, res, id)
        if db.items[id] == nil then return reply(res, 404, { error = "no item " .. id }) end
        db.items[id] = nil
        save_items(db)
        reply(res, 200, { deleted = tonumber(id) })
    end },
}

local function dispatch(req, res)
    local path = req.getURL():match("^[^?]*")
    local allowed = false
    for _, route in ipairs(routes) do
        local captures = { path:match(route[2]) }
        if captures[1] then
            if route[1] == req.getMethod() then
                return route[3](req, res, table.unpack(captures))
            end
            allowed = true
        end
    end
    if allowed then return reply(res, 405, { error = "method not allowed" }) end
    reply(res, 404, { error = "not found: " .. path })
end

-- CraftOS-PC's addListener returns nothing; ccserve's returns the bound port (useful with 0).
port = http.addListener(port) or port
print("JSON API on port " .. port .. "; press Ctrl+C to stop")
while true do
    local _, p, req, res = os.pullEvent("http_request")
    if p == port then
        local ok, err = pcall(dispatch, req, res)
        if not ok then pcall(reply, res, 500, { error = tostring(err) }) end
        res.close()
    end
end
