-- NodeMCU's `file` module over the CraftOS `fs` API, so over the `--root` sandbox.
--
-- Names: the firmware's file system is flat (SPIFFS), reached as "name" or "/FLASH/name" (an SD
-- card as "/SD0/name"). Here every such name is a path under the root: a leading "/FLASH/" or
-- "/SDn/" and leading "/" are dropped, and `fs` keeps the rest inside the root ("../x" is "x").
-- A name may contain "/" (SPIFFS allows it too): "www/index.html" is that file in the root's
-- `www` directory. `file.list` therefore lists every file under the root, recursively, by such
-- names; directories themselves are not listed, and `file.exists` is false for them.
--
-- Files: CraftOS opens a file for reading ("r", whole file read at once) or for writing ("w",
-- "a"), never both. NodeMCU's "r", "r+", "w+" and "a+" are kept in memory here: the content is
-- read at open, reads and writes work on that copy, and `flush`/`close` write it back. "w" and
-- "a" stream to the file. As on the firmware, written data is certain to be in the file only
-- after `flush` or `close` (an object collected unclosed is flushed then).
local native, support, loop = ...

local fs = fs
local expect = support.expect
local type, error, pcall, tostring, ipairs = type, error, pcall, tostring, ipairs
local setmetatable, getmetatable = setmetatable, getmetatable
local sub, find, gsub, rep = string.sub, string.find, string.gsub, string.rep
local os_date, floor = os.date, math.floor

-- The firmware's FILE_READ_CHUNK: what a read returns by default, and the most a read up to a
-- character (so `readline`) returns.
local READ_CHUNK = 1024

local file = {}

-- The CraftOS path of a NodeMCU file name.
local function path_of(name)
    name = gsub(name, "^/FLASH/", "")
    name = gsub(name, "^/SD%d/", "")
    local path = fs.combine(name)
    while path == ".." or sub(path, 1, 3) == "../" do path = sub(path, 4) end
    return path
end

local function is_file(path)
    return path ~= "" and fs.exists(path) and not fs.isDir(path)
end

local function read_all(path)
    local h = fs.open(path, "rb")
    if not h then return nil end
    local data = h.readAll()
    h.close()
    return data
end

-- Replaces the file's content with `data`; whether it could.
local function write_all(path, data)
    local h = fs.open(path, "wb")
    if not h then return false end
    local ok = pcall(h.write, data)
    h.close()
    return ok
end

-------------------------------------------------------------------------------------------------
-- File objects
-------------------------------------------------------------------------------------------------
-- Fields: `path`; `closed`; a streamed file ("w", "a") has its CraftOS handle `h`; a file kept
-- in memory has `data`, `pos` (bytes before the position), `writable`, `append`, `dirty`.
local File = {}
File.__index = File

-- Raises unless `self` is a file object (a method called with "." instead of ":"); `level` as
-- error's, counted from the method.
local function check_file(self, what, level)
    if getmetatable(self) ~= File then
        error(("bad argument #1 to '%s' (file object expected; call it as fd:%s())"):format(what, what), level + 1)
    end
end

local function check_open(self, what)
    check_file(self, what, 3)
    if self.closed then error("file." .. what .. ": the file is closed", 3) end
end

-- read([n_or_char]): up to n bytes (1024 when n is absent or not positive), or up to and
-- including the next `char` (at most 1024 bytes); nil at the end of the file, and for a file
-- opened only for writing.
function File:read(n_or_char)
    check_open(self, "read")
    local char, n = nil, READ_CHUNK
    if type(n_or_char) == "string" then
        if #n_or_char ~= 1 then error("bad argument #1 to 'read' (one character expected)", 2) end
        char = n_or_char
    else
        expect(1, n_or_char, "number", "nil")
        if n_or_char and n_or_char > 0 then n = floor(n_or_char) end
    end
    local data, pos = self.data, self.pos
    if not data or pos >= #data then return nil end
    local chunk = sub(data, pos + 1, pos + n)
    local stop = char and find(chunk, char, 1, true)
    if stop then chunk = sub(chunk, 1, stop) end
    self.pos = pos + #chunk
    return chunk
end

-- readline(): the next line with its "\n" (at most 1024 bytes); nil at the end of the file.
function File:readline()
    check_open(self, "readline")
    return self:read("\n")
end

-- write(s): true, or nil when the file is not open for writing or the write failed.
function File:write(s)
    check_open(self, "write")
    if type(s) == "number" then s = tostring(s) end
    expect(1, s, "string")
    if self.h then
        return pcall(self.h.write, s) and true or nil
    end
    if not self.writable then return nil end
    local data, pos = self.data, self.pos
    -- "a+" writes only at the end; a position past the end leaves zero bytes between.
    if self.append then pos = #data end
    if pos > #data then data = data .. rep("\0", pos - #data) end
    self.data = sub(data, 1, pos) .. s .. sub(data, pos + #s + 1)
    self.pos = pos + #s
    self.dirty = true
    return true
end

function File:writeline(s)
    check_open(self, "writeline")
    if type(s) == "number" then s = tostring(s) end
    expect(1, s, "string")
    return self:write(s .. "\n")
end

local whences = { set = true, cur = true, ["end"] = true }

-- seek([whence[, offset]]): the new position from the start of the file; nil if it would be
-- negative.
function File:seek(whence, offset)
    check_open(self, "seek")
    expect(1, whence, "string", "nil")
    expect(2, offset, "number", "nil")
    whence, offset = whence or "cur", offset or 0
    if not whences[whence] then
        error(("bad argument #1 to 'seek' (invalid option '%s')"):format(whence), 2)
    end
    if self.h then return (self.h.seek(whence, offset)) end
    local base = (whence == "set" and 0) or (whence == "end" and #self.data) or self.pos
    local target = base + floor(offset)
    if target < 0 then return nil end
    self.pos = target
    return target
end

function File:flush()
    check_open(self, "flush")
    if self.h then
        pcall(self.h.flush)
    elseif self.dirty and write_all(self.path, self.data) then
        self.dirty = false
    end
end

-- close(): flushes and closes; closing a closed file does nothing.
function File:close()
    check_file(self, "close", 2)
    if self.closed then return end
    self:flush()
    if self.h then pcall(self.h.close) end
    self.closed, self.h, self.data = true, nil, nil
end

-- As the firmware closes a file object it collects: what was written is not lost.
function File:__gc()
    if not self.closed then pcall(File.close, self) end
end

local modes = {
    r = { read = true }, ["r+"] = { read = true, write = true },
    w = { stream = "wb" }, ["w+"] = { write = true, truncate = true },
    a = { stream = "ab" }, ["a+"] = { write = true, append = true },
}

local function open(name, mode)
    local m = modes[gsub(mode, "b", "")] -- "rb", "w+b"...: binary is the only kind there is
    if not m then error(("bad argument #2 to 'open' (invalid mode '%s')"):format(mode), 3) end
    local path = path_of(name)
    if path == "" or fs.isDir(path) then return nil end
    local fd = { path = path }
    if m.stream then
        local h = fs.open(path, m.stream)
        if not h then return nil end
        if m.stream == "ab" then h.seek("end") end
        fd.h = h
    else
        local data = ""
        if not m.truncate and is_file(path) then
            data = read_all(path)
            if not data then return nil end
        elseif m.read then
            return nil -- "r", "r+": the file must exist
        elseif not write_all(path, "") then
            return nil -- "w+" empties the file and "a+" creates it at once, as fopen does
        end
        fd.data, fd.pos = data, 0
        fd.writable, fd.append = m.write, m.append
    end
    return setmetatable(fd, File)
end

-------------------------------------------------------------------------------------------------
-- The module: the basic model (functions on the last file opened) and the file system
-------------------------------------------------------------------------------------------------
local current -- the file `file.read` & co. work on: what the last `file.open` returned

-- open(name[, mode]): a file object, or nil if it cannot be opened (a read mode and no such
-- file, a directory, a name the sandbox refuses). An unknown mode is an error here.
function file.open(name, mode)
    expect(1, name, "string")
    expect(2, mode, "string", "nil")
    current = nil
    current = open(name, mode or "r")
    return current
end

for _, name in ipairs({ "read", "readline", "write", "writeline", "seek", "flush" }) do
    local method = File[name]
    file[name] = function(...)
        if not current then error("file." .. name .. ": no open file (call file.open first)", 2) end
        return method(current, ...)
    end
end

-- close(): closes the file of the basic model, if any.
function file.close()
    if current then current:close() end
end

function file.exists(name)
    expect(1, name, "string")
    return is_file(path_of(name))
end

-- remove(name): deletes a file (never a directory); nil either way, as on the firmware.
function file.remove(name)
    expect(1, name, "string")
    local path = path_of(name)
    if is_file(path) then pcall(fs.delete, path) end
end

-- rename(old, new): true, or false when `old` does not exist or `new` does. As the firmware
-- documents, the file of the basic model is closed first.
function file.rename(old, new)
    expect(1, old, "string")
    expect(2, new, "string")
    file.close()
    local from, to = path_of(old), path_of(new)
    if from == "" or to == "" or not fs.exists(from) or fs.exists(to) then return false end
    return (pcall(fs.move, from, to))
end

-- Calls `f(path, size)` for every file under `dir`. The depth bound stops on a symlink loop.
local function walk(dir, f, depth)
    if depth > 32 then return end
    for _, entry in ipairs(fs.list(dir)) do
        local path = dir == "" and entry or dir .. "/" .. entry
        if fs.isDir(path) then
            walk(path, f, depth + 1)
        else
            f(path, fs.getSize(path))
        end
    end
end

-- list([pattern]): { name = size } of every file under the root whose name matches the Lua
-- pattern (all without one); names as described at the top.
function file.list(pattern)
    expect(1, pattern, "string", "nil")
    local out = {}
    walk("", function(path, size)
        if not pattern or find(path, pattern) then out[path] = size end
    end, 0)
    return out
end

-- fsinfo(): remaining, used, total bytes. Used is the size of every file under the root;
-- remaining is what `fs.getFreeSpace` reports (a nominal figure: ccserve does not measure the
-- host's disk); total is their sum.
function file.fsinfo()
    local used = 0
    walk("", function(_, size) used = used + size end, 0)
    local remaining = fs.getFreeSpace("")
    return remaining, used, remaining + used
end

-- getcontents(name): the whole file, or nil if there is no such file.
function file.getcontents(name)
    expect(1, name, "string")
    local path = path_of(name)
    if not is_file(path) then return nil end
    return read_all(path)
end

-- putcontents(name, contents): replaces the file's content; true, or nil on failure.
function file.putcontents(name, contents)
    expect(1, name, "string")
    if type(contents) == "number" then contents = tostring(contents) end
    expect(2, contents, "string")
    local path = path_of(name)
    if path == "" or fs.isDir(path) then return nil end
    return write_all(path, contents) or nil
end

-- stat(name): the firmware's table (`time` is the modification time, UTC), or nil if there is
-- no such file or directory. `name` is the name as `file.list` gives it; `is_hidden` is true for
-- a dot file; `is_sys` and `is_arch` (FAT attributes) are always false.
function file.stat(name)
    expect(1, name, "string")
    local path = path_of(name)
    if path == "" or not fs.exists(path) then return nil end
    local a = fs.attributes(path)
    local t = os_date("!*t", floor((a.modified or 0) / 1000))
    return {
        name = path, size = a.size, is_dir = a.isDir, is_rdonly = a.isReadOnly,
        is_hidden = sub(fs.getName(path), 1, 1) == ".", is_sys = false, is_arch = false,
        time = { year = t.year, mon = t.month, day = t.day, hour = t.hour, min = t.min, sec = t.sec },
    }
end

-- Everything else (`chdir`, `format`, `fscfg`, `mount`, `on`, `vol`...) raises an error naming it.
return loop.not_provided(file, "file")
