//! NodeMCU's `file`, `sjson`, `wifi`, `gpio` and `adc` modules (`src/nodemcu/file.lua`,
//! `sjson.lua`, `board.lua`) in NodeMCU programs (`--nodemcu`) run by the real `ccserve` binary.
//!
//! Each script calls the module functions, reports every result as a `name=values` line (`\n`
//! inside a value written as `\n`), and serves that report with `httpserver` on an OS-chosen port
//! (printing `LISTENING <port>`); the test fetches it over TCP and compares every line. File tests
//! also check the files on the host, under a temporary `--root`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use common::{exchange, get, Server, WAIT};

/// Lua put before every script: `show(name, ...)` adds a report line, `try(f, ...)` gives the
/// error `f(...)` raises without its position ("ok" if none), `serve([routes])` serves the
/// report (and `routes[url](req, res)`, which returns a body or answers itself).
const HARNESS: &str = r##"
local out = {}
local function show(name, ...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = (tostring(parts[i]):gsub("\n", "\\n")) end
    out[#out + 1] = name .. "=" .. table.concat(parts, ",")
end
local function try(f, ...)
    local ok, err = pcall(f, ...)
    if ok then return "ok" end
    return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end
local function serve(routes)
    local srv = require("httpserver").createServer(0, function(req, res)
        local route = routes and routes[req.url]
        if not route then return res:finish(table.concat(out, "\n")) end
        local body = route(req, res)
        if body then res:finish(body) end
    end)
    print("LISTENING " .. srv:getaddr())
end
"##;

/// A fresh directory for one test: `(base, base/root)`, both created.
fn temp_root(name: &str) -> (PathBuf, PathBuf) {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("nodemcu-modules-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(&root).expect("create the test root");
    (base, root)
}

/// Starts `script` (after the harness) as a NodeMCU program, with `--root root` if given.
fn start(script: &str, root: Option<&Path>) -> Server {
    let source = format!("{HARNESS}{script}");
    match root {
        Some(root) => {
            let root = root.to_string_lossy();
            Server::start(&source, &["--nodemcu", "--root", root.as_ref()])
        }
        None => Server::start(&source, &["--nodemcu"]),
    }
}

/// The report the script serves at `/`, line by line.
fn report(server: &Server) -> Vec<String> {
    let r = get(server.port, "/");
    assert_eq!(r.status, 200, "report: {}", r.text());
    r.text().lines().map(str::to_string).collect()
}

/// Compares the report with `want`, line by line (a clear message for the first difference).
fn assert_report(server: &Server, want: &[&str]) {
    let got = report(server);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "report line {}", i + 1);
    }
    assert_eq!(got.len(), want.len(), "report lines: {got:#?}");
}

/// The report as `name -> values`.
fn report_map(server: &Server) -> HashMap<String, String> {
    report(server)
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("name=values");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `YYYY-MM-DD hh:mm:ss` (UTC) of a count of seconds since 1970.
fn utc(secs: u64) -> String {
    let (year, month, day, rem, _) = common::civil::civil(secs);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

const FILE_OBJECTS: &str = r##"
show("open missing", file.open("missing.txt"), file.open("missing.txt", "r+"), file.open("dir"))
local f = file.open("/FLASH/data.txt", "r")
show("read 3", f:read(3))
show("readline", f:readline())
show("read to char", f:read("m"))
show("read rest", f:read())
show("at eof", f:read(), f:readline())
show("seek set", f:seek("set", 6), f:readline())
show("seek end", f:seek("end"), f:seek("cur", -3), f:read())
show("seek default", f:seek(), f:seek("set", -1), f:seek())
show("bad seek", try(f.seek, f, "middle"))
show("write on r", f:write("x"))
show("close", f:close(), f:close())
show("read closed", try(f.read, f))
show("dot call", try(f.read))
file.putcontents("big.bin", string.rep("a", 3000))
f = file.open("big.bin")
show("read sizes", #f:read(), #f:read("\n"), #f:read(5000), f:read(), f:read(0))
show("bad char", try(f.read, f, "ab"))
f:close()
f = file.open("new/log.txt", "w")
show("w write", f:write("one"), f:writeline(" two"), f:write(3), f:read())
show("w seek", f:seek(), f:seek("set", 0), f:write("ONE"))
f:close()
show("after w", file.getcontents("new/log.txt"))
f = file.open("new/log.txt", "a")
show("a seek", f:seek(), f:write("+4"), f:seek("set", 0), f:write("!"))
f:close()
show("after a", file.getcontents("new/log.txt"))
f = file.open("data.txt", "r+")
show("r+ read", f:read(5), f:write("-"))
show("r+ before flush", file.getcontents("data.txt"))
f:flush()
show("r+ after flush", file.getcontents("data.txt"))
show("r+ read on", f:readline(), f:seek("end", 2), f:write("Z"))
f:close()
show("r+ past end", file.getcontents("data.txt") == "alpha-beta\ngamma\n\0\0Z")
f = file.open("data.txt", "w+")
show("w+ empties", file.getcontents("data.txt"), f:read())
show("w+ write", f:write("fresh"), f:seek("set", 1), f:read(2))
f:close()
show("after w+", file.getcontents("data.txt"))
f = file.open("notes.txt", "a+")
show("a+ creates", file.exists("notes.txt"), f:read())
show("a+ appends", f:write("x"), f:seek("set", 0), f:write("y"), f:seek("set", 0), f:read())
f:close()
show("after a+", file.getcontents("notes.txt"))
show("binary modes", file.open("notes.txt", "rb"):read(), file.open("notes.txt", "r+b"):read())
show("unknown mode", try(file.open, "x.txt", "rw"))
show("escape", file.putcontents("../escaped.txt", "in"), file.putcontents("/FLASH/../../escaped2.txt", "in2"))
show("escape read", file.open("../outside.txt"), file.getcontents("../../outside.txt"))
show("sd name", file.putcontents("/SD0/card.txt", "sd"), file.getcontents("card.txt"))
local unclosed = file.open("unclosed.txt", "w+")
unclosed:write("kept")
unclosed = nil
file.open("missing.txt") -- the basic model lets go of it too
collectgarbage()
collectgarbage()
show("collected", file.getcontents("unclosed.txt"))
serve({
    ["/save"] = function(req) return tostring(file.putcontents("saved.txt", "saved by " .. req.method)) end,
})
"##;

#[test]
fn file_objects_read_write_and_seek_in_every_mode() {
    let (base, root) = temp_root("objects");
    std::fs::create_dir(root.join("dir")).unwrap();
    std::fs::write(root.join("data.txt"), "alpha\nbeta\ngamma\n").unwrap();
    std::fs::write(base.join("outside.txt"), "secret\n").unwrap();
    let server = start(FILE_OBJECTS, Some(&root));
    assert_report(
        &server,
        &[
            "open missing=nil,nil,nil",
            "read 3=alp",
            "readline=ha\\n",
            "read to char=beta\\ngam",
            "read rest=ma\\n",
            "at eof=nil,nil",
            "seek set=6,beta\\n",
            "seek end=17,14,ma\\n",
            "seek default=17,nil,17",
            "bad seek=bad argument #1 to 'seek' (invalid option 'middle')",
            "write on r=nil",
            "close=nil",
            "read closed=file.read: the file is closed",
            "dot call=bad argument #1 to 'read' (file object expected; call it as fd:read())",
            "read sizes=1024,1024,952,nil,nil",
            "bad char=bad argument #1 to 'read' (one character expected)",
            "w write=true,true,true,nil",
            "w seek=9,0,true",
            "after w=ONE two\\n3",
            "a seek=9,true,0,true",
            "after a=ONE two\\n3+4!",
            "r+ read=alpha,true",
            "r+ before flush=alpha\\nbeta\\ngamma\\n",
            "r+ after flush=alpha-beta\\ngamma\\n",
            "r+ read on=beta\\n,19,true",
            "r+ past end=true",
            "w+ empties=,nil",
            "w+ write=true,1,re",
            "after w+=fresh",
            "a+ creates=true,nil",
            "a+ appends=true,0,true,0,xy",
            "after a+=xy",
            "binary modes=xy,xy",
            "unknown mode=bad argument #2 to 'open' (invalid mode 'rw')",
            "escape=true,true",
            "escape read=nil,nil",
            "sd name=true,sd",
            "collected=kept",
        ],
    );
    // What the script wrote is on the host, inside the root; "../" led nowhere else.
    assert_eq!(read(&root.join("new/log.txt")), "ONE two\n3+4!");
    assert_eq!(read(&root.join("data.txt")), "fresh");
    assert_eq!(read(&root.join("notes.txt")), "xy");
    assert_eq!(read(&root.join("card.txt")), "sd");
    assert_eq!(read(&root.join("escaped.txt")), "in");
    assert_eq!(read(&root.join("escaped2.txt")), "in2");
    assert!(!base.join("escaped.txt").exists() && !base.join("escaped2.txt").exists());
    assert!(!base.parent().unwrap().join("escaped2.txt").exists());
    assert_eq!(read(&base.join("outside.txt")), "secret\n");
    // From a request callback too.
    assert_eq!(get(server.port, "/save").text(), "true");
    assert_eq!(read(&root.join("saved.txt")), "saved by GET");
}

const FILE_MODULE: &str = r##"
show("no open file", try(file.read), try(file.write, "x"), file.close())
show("open w", file.open("basic.txt", "w") ~= nil)
show("write", file.write("first\n"), file.writeline("second"), file.flush())
file.close()
show("open r", file.open("basic.txt") ~= nil)
show("read", file.readline(), file.read(3), file.seek("cur"), file.read(), file.seek("set", 0))
file.close()
show("after close", try(file.readline))
local fd = file.open("basic.txt")
show("failed open", file.open("none.txt"), try(file.read), fd:read(5))
file.open("basic.txt")
show("rename", file.rename("basic.txt", "renamed.txt"), try(file.read), file.exists("basic.txt"),
    file.exists("renamed.txt"))
file.putcontents("other.txt", "o")
show("rename onto existing", file.rename("renamed.txt", "other.txt"), file.getcontents("other.txt"))
show("rename missing", file.rename("none.txt", "x.txt"), file.exists("x.txt"))
show("exists", file.exists("renamed.txt"), file.exists("/FLASH/renamed.txt"), file.exists("none.txt"),
    file.exists("dir"))
show("remove", file.remove("other.txt"), file.exists("other.txt"), file.remove("none.txt"),
    file.remove("dir"), file.exists("dir/keep.txt"))
show("putcontents", file.putcontents("www/index.html", "<h1>hi</h1>"), file.putcontents(".hidden", 42),
    file.putcontents("dir", "x"))
local names = {}
for name, size in pairs(file.list()) do names[#names + 1] = name .. ":" .. size end
table.sort(names)
show("list", table.concat(names, " "))
names = {}
for name in pairs(file.list("%.html$")) do names[#names + 1] = name end
show("list pattern", table.concat(names, " "))
show("list bad pattern", try(file.list, "[a"))
local remaining, used, total = file.fsinfo()
show("fsinfo", used, remaining > 1e9, total == remaining + used)
local s = file.stat("/FLASH/www/index.html")
show("stat", s.name, s.size, s.is_dir, s.is_rdonly, s.is_hidden, s.is_sys, s.is_arch)
local t = s.time
show("stat time", ("%04d-%02d-%02d %02d:%02d:%02d"):format(t.year, t.mon, t.day, t.hour, t.min, t.sec))
show("stat other", file.stat(".hidden").is_hidden, file.stat("www").is_dir, file.stat("www").name,
    file.stat("nothing"))
show("getcontents", file.getcontents("www/index.html"), file.getcontents("nothing"),
    file.getcontents("www"), file.getcontents(".hidden"))
show("bad arguments", try(file.open), try(file.exists, 1), try(file.putcontents, "x.txt"))
serve()
"##;

#[test]
fn file_module_functions_and_the_basic_model() {
    let (_base, root) = temp_root("module");
    std::fs::create_dir(root.join("dir")).unwrap();
    std::fs::write(root.join("dir/keep.txt"), "keep\n").unwrap();
    let server = start(FILE_MODULE, Some(&root));
    let stat_time = utc(std::fs::metadata(root.join("www/index.html"))
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs());
    let stat_line = format!("stat time={stat_time}");
    assert_report(
        &server,
        &[
            "no open file=file.read: no open file (call file.open first),\
             file.write: no open file (call file.open first)",
            "open w=true",
            "write=true,true",
            "open r=true",
            "read=first\\n,sec,9,ond\\n,0",
            "after close=file.readline: the file is closed",
            "failed open=nil,file.read: no open file (call file.open first),first",
            "rename=true,file.read: the file is closed,false,true",
            "rename onto existing=false,o",
            "rename missing=false,false",
            "exists=true,true,false,false",
            "remove=nil,false,nil,nil,true",
            "putcontents=true,true,nil",
            "list=.hidden:2 dir/keep.txt:5 renamed.txt:13 www/index.html:11",
            "list pattern=www/index.html",
            "list bad pattern=malformed pattern (missing ']')",
            "fsinfo=31,true,true",
            "stat=www/index.html,11,false,false,false,false,false",
            &stat_line,
            "stat other=true,true,www,nil",
            "getcontents=<h1>hi</h1>,nil,nil,42",
            "bad arguments=bad argument #1 (string expected, got nil),\
             bad argument #1 (string expected, got number),\
             bad argument #2 (string expected, got nil)",
        ],
    );
    assert_eq!(read(&root.join("renamed.txt")), "first\nsecond\n");
    assert!(!root.join("basic.txt").exists() && !root.join("other.txt").exists());
    assert!(
        root.join("dir/keep.txt").exists(),
        "file.remove never removes a directory"
    );
    assert_eq!(read(&root.join(".hidden")), "42");
}

const SJSON: &str = r##"
show("arrays", sjson.encode({1, 2, 3}), sjson.encode({1, nil, "x"}), sjson.encode({}),
    sjson.encode({{}, {{}}}), sjson.encode({[5] = 1}))
show("objects", sjson.encode({a = 1}), sjson.encode({[0] = "zero"}), sjson.encode({[1.5] = true}),
    sjson.encode({b = {c = {}}}))
show("values", sjson.encode({true, false, 1.5, -7, 1e300, "s"}))
show("null", sjson.encode({sjson.NULL, 1}), sjson.encode({"x", "y"}, {null = "x"}),
    sjson.encode({a = sjson.NULL}))
show("function", sjson.encode({function() return {n = 1} end, function() end}))
show("text", sjson.encode({"q\"b\\s/\n\t\1\127é"}))
local sparse = sjson.encode({[1] = 1, [100] = 2})
show("sparse", sparse == '{"1":1,"100":2}' or sparse == '{"100":2,"1":1}' or sparse)
local deep = {}
local cur = deep
for _ = 1, 20 do cur[1] = {} cur = cur[1] end
show("depth", try(sjson.encode, deep), #sjson.encode(deep, {depth = 21}))
local loop = {}
loop[1] = loop
show("loop", try(sjson.encode, loop))
local shared = {1}
show("shared", sjson.encode({shared, shared}))
show("encode errors", try(sjson.encode, "x"), try(sjson.encode, {0/0}), try(sjson.encode, {math.huge}),
    try(sjson.encode, {[true] = 1}), try(sjson.encode, {coroutine.create(print)}))
local t = sjson.decode(' {"a": [1, 2.5, "s", true, false, null], "b": {"c": null}} ')
show("decode", #t.a, t.a[1], t.a[2], t.a[3], t.a[4], t.a[5], t.a[6] == sjson.NULL, t.b.c == sjson.NULL)
show("NULL", tostring(sjson.NULL), try(function() sjson.NULL.x = 1 end), sjson.decode("[null]")[1] == sjson.NULL)
t = sjson.decode('[1, null, 3]', {})
show("null as nil", t[1], t[2], t[3])
t = sjson.decode('{"a": null, "b": [null]}', {null = "\0"})
show("null as string", t.a == "\0", t.b[1] == "\0", sjson.encode(t.b, {null = "\0"}))
show("unicode", sjson.decode('["\\u00e9\\ud83d\\ude00\\n"]')[1] == "é😀\n")
show("round trip", sjson.encode(sjson.decode('[1,{"x":"y"},[],{},"\\"q\\""]')))
show("trailing text", sjson.decode('[7] and more')[1])
show("decode errors", try(sjson.decode, '{"a":}'), try(sjson.decode, '[1, 2'), try(sjson.decode, '42'),
    try(sjson.decode, ''), try(sjson.decode))
local events = {}
local mt = {
    __newindex = function(tbl, k, v) events[#events + 1] = "set " .. tostring(k) rawset(tbl, k, v) end,
    checkpath = function(tbl, path)
        events[#events + 1] = "path /" .. table.concat(path, "/")
        return path[1] ~= "skip"
    end,
}
t = sjson.decode('{"foo": [1, 2, []], "skip": {"x": 1}}', {metatable = mt})
table.sort(events)
show("metatable", table.concat(events, ";"), getmetatable(t) == mt, getmetatable(t.foo[3]) == mt, t.skip)
local d = sjson.decoder()
local a, b = d:write('{"a": [1, "x\\'), d:write('"y"], "b"')
local c = d:write(': {}}  ')
show("decoder", a, b, type(c), c.a[2], d:result() == c, d:write("more") == c)
d = sjson.decoder({null = "N"})
show("decoder null", d:write("[null]")[1])
d = sjson.decoder()
show("decoder errors", try(d.result, d), try(d.write, d, "oops"), try(d.write, d, "[1]"))
d = sjson.decoder()
d:write('{"a":')
show("decoder bad value", try(d.write, d, '}'))
local e = sjson.encoder({s = string.rep("z", 50)})
local sizes, parts = {}, {}
repeat
    local piece = e:read(16)
    if piece then sizes[#sizes + 1] = #piece parts[#parts + 1] = piece end
until not piece
show("encoder", table.concat(sizes, " "), table.concat(parts), e:read())
show("encoder default", #sjson.encoder({string.rep("y", 2000)}):read())
serve({
    ["/json"] = function(req, res)
        local body = {}
        req.ondata = function(_, chunk)
            if chunk then body[#body + 1] = chunk return end
            local ok, value = pcall(sjson.decode, table.concat(body))
            if not ok then return res:finish("bad json: " .. value, 400) end
            value.n = value.n + 1
            res:send_header("Content-Type", "application/json")
            res:finish(sjson.encode(value))
        end
    end,
})
"##;

#[test]
fn sjson_encodes_decodes_and_streams_with_the_firmware_rules() {
    let server = start(SJSON, None);
    assert_report(
        &server,
        &[
            r#"arrays=[1,2,3],[1,null,"x"],[],[[],[[]]],[null,null,null,null,1]"#,
            r#"objects={"a":1},{"0":"zero"},{"1.5":true},{"b":{"c":[]}}"#,
            r#"values=[true,false,1.5,-7,1e+300,"s"]"#,
            r#"null=[null,1],[null,"y"],{"a":null}"#,
            r#"function=[{"n":1},null]"#,
            r#"text=["q\"b\\s/\n\t\u0001\u007f\u00e9"]"#,
            "sparse=true",
            "depth=sjson.encode: tables nested deeper than 20 levels,42",
            "loop=sjson.encode: tables nested deeper than 20 levels",
            "shared=[[1],[1]]",
            "encode errors=bad argument #1 (table expected, got string),\
             sjson.encode: cannot encode NaN,sjson.encode: cannot encode infinity,\
             sjson.encode: cannot encode a key of type boolean,sjson.encode: cannot encode a thread",
            "decode=6,1,2.5,s,true,false,true,true",
            "NULL=sjson.NULL,attempt to modify sjson.NULL,true",
            "null as nil=1,nil,3",
            "null as string=true,true,[null]",
            "unicode=true",
            r#"round trip=[1,{"x":"y"},[],[],"\"q\""]"#,
            "trailing text=7",
            "decode errors=JSON parse error: Malformed JSON at position 6: \
             Unexpected character \"}\", expected a value.,\
             JSON parse error: unexpected end,\
             JSON parse error: expected an object or an array, got \"4\",\
             JSON parse error: no JSON text,\
             bad argument #1 (string expected, got nil)",
            "metatable=path /;path /foo;path /foo/3;path /skip;set 1;set 2;set 3;set foo,true,true,nil",
            "decoder=nil,nil,table,x\"y,true,true",
            "decoder null=N",
            "decoder errors=sjson.decoder: decode not complete,\
             JSON parse error: expected an object or an array, got \"o\",\
             JSON parse error: previous call",
            "decoder bad value=JSON parse error: Malformed JSON at position 6: \
             Unexpected character \"}\", expected a value.",
            &format!(r#"encoder=16 16 16 10,{{"s":"{}"}},nil"#, "z".repeat(50)),
            "encoder default=1024",
        ],
    );
    // In a request callback: the body decoded, changed, encoded.
    let post = |body: &str| {
        exchange(
            server.port,
            format!(
                "POST /json HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let r = post(r#"{"n": 41}"#);
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"n":42}"#));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = post(r#"{"n": "#);
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "bad json: JSON parse error: unexpected end")
    );
}

const WIFI_CONFIG: &str = r##"
local main_done = false
show("mode", wifi.setmode(wifi.STATION), wifi.getmode(), wifi.STATION, wifi.SOFTAP, wifi.STATIONAP,
    wifi.NULLMODE)
show("status in main chunk", wifi.sta.status(), wifi.STA_GOTIP, wifi.STA_IDLE, wifi.STA_CONNECTING,
    wifi.STA_WRONGPWD, wifi.STA_APNOTFOUND, wifi.STA_FAIL)
show("config", wifi.sta.config({
    ssid = "home-net", pwd = "password1", save = false,
    connected_cb = function(T)
        show("connected_cb", T.SSID, T.BSSID, T.channel, main_done)
    end,
    got_ip_cb = function(T)
        show("got_ip_cb", T.IP, T.netmask, T.gateway, main_done)
        show("getip", wifi.sta.getip())
        show("status", wifi.sta.status())
        serve()
    end,
}))
local ssid, pwd, bssid_set, bssid = wifi.sta.getconfig()
show("getconfig", ssid, pwd, bssid_set, bssid)
local c = wifi.sta.getconfig(true)
show("getconfig table", c.ssid, c.pwd, c.bssid_set, c.bssid)
show("mac", wifi.sta.getmac(), wifi.ap.getmac())
show("hostname", wifi.sta.gethostname():match("^NODE%-%x+$") ~= nil, wifi.sta.sethostname("my-node"),
    wifi.sta.gethostname(), wifi.sta.sethostname("-x"), wifi.sta.sethostname("x-"),
    wifi.sta.sethostname("a_b"), wifi.sta.sethostname(("a"):rep(33)), wifi.sta.gethostname())
show("ap", wifi.ap.config({ssid = "board", pwd = "12345678", staconnected_cb = print}), wifi.ap.getip())
local apc = wifi.ap.getconfig(true)
show("ap config", apc.ssid, apc.pwd, apc.auth, apc.channel, apc.hidden, apc.max, apc.beacon,
    wifi.ap.getconfig())
show("other", wifi.getchannel(), wifi.sta.getrssi(), wifi.sta.autoconnect(1),
    wifi.sta.setip({ip = "10.0.0.9"}), wifi.sta.getip() ~= "10.0.0.9")
show("errors", try(wifi.setmode, 4), try(wifi.sta.config, {pwd = "x"}),
    try(wifi.sta.config, {ssid = ("s"):rep(33)}), try(wifi.sta.config, {ssid = "s", got_ip_cb = 1}),
    try(wifi.eventmon.register, 9, print))
main_done = true
"##;

#[test]
fn wifi_station_reports_the_host_and_calls_back_after_the_main_chunk() {
    // The server is started by got_ip_cb: LISTENING proves the callback ran.
    let server = start(WIFI_CONFIG, None);
    let got = report_map(&server);
    let want = |name: &str, value: &str| {
        assert_eq!(got.get(name).map(String::as_str), Some(value), "{name}")
    };
    want("mode", "1,1,1,2,3,0");
    want("status in main chunk", "5,5,0,1,2,3,4");
    want("config", "true");
    want("getconfig", "home-net,password1,0,ff:ff:ff:ff:ff:ff");
    want(
        "getconfig table",
        "home-net,password1,false,ff:ff:ff:ff:ff:ff",
    );
    want(
        "hostname",
        "true,true,my-node,false,false,false,false,my-node",
    );
    want("ap", "true,nil");
    want("ap config", "board,12345678,0,6,false,4,100,board,12345678");
    want("other", "1,-50,nil,false,true");
    want(
        "errors",
        "bad argument #1 to 'setmode' (wifi mode (0 to 3) expected, got 4),\
         bad argument #1 to 'config' (ssid of at most 32 bytes expected, got nil),\
         bad argument #1 to 'config' (ssid of at most 32 bytes expected, got \"sssssssssssssssssssssssssssssssss\"),\
         bad argument #1 to 'config' (got_ip_cb function expected, got 1),\
         bad argument #1 to 'register' (wifi.eventmon event expected, got 9)",
    );
    // Called after the main chunk, with the firmware's fields.
    want("connected_cb", "home-net,ff:ff:ff:ff:ff:ff,1,true");
    want("status", "5");
    let getip = &got["getip"];
    assert_eq!(got["got_ip_cb"], format!("{getip},true"));
    let addrs: Vec<&str> = getip.split(',').collect();
    assert_eq!(addrs.len(), 3, "ip, netmask, gateway: {getip}");
    for a in addrs {
        assert!(a.parse::<std::net::Ipv4Addr>().is_ok(), "{a} in {getip}");
    }
    // The station's MAC; the access point's differs in the locally administered bit only.
    let macs: Vec<&str> = got["mac"].split(',').collect();
    let octets = |mac: &str| -> Vec<u8> {
        mac.split(':')
            .map(|o| u8::from_str_radix(o, 16).expect("hex octet"))
            .collect()
    };
    let (sta, ap) = (octets(macs[0]), octets(macs[1]));
    assert_eq!(sta.len(), 6);
    assert_eq!(ap[0], sta[0] ^ 2);
    assert_eq!(ap[1..], sta[1..]);
}

const WIFI_EVENTS: &str = r##"
local em = wifi.eventmon
local log = {}
local host = { wifi.sta.getip() }
host = { IP = host[1], netmask = host[2], gateway = host[3] }
local function record(name, T)
    local fields = {}
    for k, v in pairs(T) do
        if host[k] == v then v = "host" end
        fields[#fields + 1] = k .. "=" .. tostring(v)
    end
    table.sort(fields)
    log[#log + 1] = name .. " " .. table.concat(fields, " ") .. " status=" .. wifi.sta.status()
end
local got_ip = 0
local steps = {
    function()
        serve({ ["/log"] = function() return table.concat(log, "\n") end })
        wifi.sta.disconnect()
        log[#log + 1] = "disconnected: status=" .. wifi.sta.status() .. " ip=" .. tostring(wifi.sta.getip())
        wifi.sta.connect()
    end,
    function()
        wifi.setmode(wifi.SOFTAP)
        log[#log + 1] = "softap: status=" .. wifi.sta.status() .. " ap=" .. table.concat({ wifi.ap.getip() }, " ")
        wifi.ap.setip({ ip = "10.1.1.1", netmask = "255.0.0.0", gateway = "10.1.1.1" })
        log[#log + 1] = "ap.setip: " .. table.concat({ wifi.ap.getip() }, " ")
        wifi.setmode(wifi.STATIONAP)
    end,
    function()
        wifi.sta.config({ ssid = "other", pwd = "", auto = false })
        em.unregister(em.STA_CONNECTED)
        wifi.sta.connect(function(T) record("connect_cb", T) end)
    end,
    function()
        wifi.sta.connect() -- already connected: nothing happens
        wifi.sta.disconnect(function(T) record("disconnect_cb", T) end)
        wifi.setmode(wifi.NULLMODE) -- already down: the mode changes, nothing else
        node.task.post(function() print("WIFI DONE") end)
    end,
}
em.register(em.STA_CONNECTED, function(T) record("CONNECTED", T) end)
em.register(em.STA_DISCONNECTED, function(T) record("DISCONNECTED", T) end)
em.register(em.WIFI_MODE_CHANGED, function(T) record("MODE", T) end)
em.register(em.STA_GOT_IP, function(T)
    record("GOT_IP", T)
    got_ip = got_ip + 1
    steps[got_ip]()
end)
em.register(em.STA_DHCP_TIMEOUT, function() log[#log + 1] = "DHCP_TIMEOUT" end)
em.register(em.STA_DHCP_TIMEOUT)
log[#log + 1] = "main chunk: status=" .. wifi.sta.status() .. " events=" .. #log
"##;

#[test]
fn wifi_events_follow_the_station_state() {
    let server = start(WIFI_EVENTS, None);
    assert!(
        server.line_starting("WIFI DONE", WAIT).is_some(),
        "stderr: {}",
        server.stderr()
    );
    let log = get(server.port, "/log").text();
    let connected = "BSSID=ff:ff:ff:ff:ff:ff SSID=ccserve channel=1";
    let got_ip = "GOT_IP IP=host gateway=host netmask=host";
    let left = "BSSID=ff:ff:ff:ff:ff:ff SSID=ccserve reason=8";
    let want = [
        "main chunk: status=5 events=0".to_string(),
        // The boot connection, played after the main chunk.
        format!("CONNECTED {connected} status=5"),
        format!("{got_ip} status=5"),
        // sta.disconnect, then sta.connect.
        "disconnected: status=0 ip=nil".to_string(),
        format!("DISCONNECTED {left} status=5"),
        format!("CONNECTED {connected} status=5"),
        format!("{got_ip} status=5"),
        // Out of the station modes and back.
        "softap: status=0 ap=192.168.4.1 255.255.255.0 192.168.4.1".to_string(),
        "ap.setip: 10.1.1.1 255.0.0.0 10.1.1.1".to_string(),
        "MODE new_mode=2 old_mode=1 status=5".to_string(),
        format!("DISCONNECTED {left} status=5"),
        "MODE new_mode=3 old_mode=2 status=5".to_string(),
        format!("CONNECTED {connected} status=5"),
        format!("{got_ip} status=5"),
        // sta.config without auto connect leaves the network it was on; sta.connect(cb) joins.
        format!("DISCONNECTED {left} status=5"),
        "connect_cb BSSID=ff:ff:ff:ff:ff:ff SSID=other channel=1 status=5".to_string(),
        format!("{got_ip} status=5"),
        "disconnect_cb BSSID=ff:ff:ff:ff:ff:ff SSID=other reason=8 status=0".to_string(),
        "MODE new_mode=0 old_mode=3 status=0".to_string(),
    ];
    let got: Vec<&str> = log.lines().collect();
    assert_eq!(got, want);
}

const GPIO_ADC: &str = r##"
show("constants", gpio.INPUT, gpio.OUTPUT, gpio.INT, gpio.OPENDRAIN, gpio.LOW, gpio.HIGH, gpio.FLOAT,
    gpio.PULLUP)
show("never set", gpio.read(0), gpio.read(12))
gpio.mode(1, gpio.OUTPUT)
show("output", gpio.read(1), gpio.write(1, gpio.HIGH), gpio.read(1))
gpio.write(1, gpio.LOW)
show("output low", gpio.read(1))
gpio.mode(2, gpio.INPUT, gpio.PULLUP)
gpio.mode(3, gpio.INPUT, gpio.FLOAT)
gpio.mode(4, gpio.INT)
show("inputs", gpio.read(2), gpio.read(3), gpio.read(4))
gpio.write(2, gpio.LOW)
gpio.mode(2, gpio.OPENDRAIN)
show("pull-up pin written", gpio.read(2))
local fired = false
show("trig", gpio.trig(5, "both", function() fired = true end), gpio.trig(5, "up"), gpio.trig(5),
    gpio.trig(6, "none"))
show("pin errors", try(gpio.write, 13, 1), try(gpio.read, -1), try(gpio.read, 1.5),
    try(gpio.mode, "1", gpio.OUTPUT), try(gpio.trig, 0, "up"))
show("value errors", try(gpio.write, 1, 2), try(gpio.write, 1), try(gpio.mode, 1, 7),
    try(gpio.mode, 0, gpio.INT), try(gpio.mode, 1, gpio.INPUT, 2), try(gpio.trig, 1, "sideways"),
    try(gpio.trig, 1, "up", 5))
show("adc", adc.read(0), adc.readvdd33(), adc.force_init_mode(adc.INIT_VDD33),
    adc.force_init_mode(adc.INIT_ADC), adc.INIT_ADC, adc.INIT_VDD33)
show("adc errors", try(adc.read, 1), try(adc.read), try(adc.force_init_mode, 3))
serve({
    ["/on"] = function() gpio.write(7, gpio.HIGH) return "on" end,
    ["/off"] = function() gpio.write(7, gpio.LOW) return "off" end,
    ["/pin"] = function() return gpio.read(7) .. " fired=" .. tostring(fired) end,
})
"##;

#[test]
fn gpio_pins_remember_what_was_written_and_adc_reads_fixed_values() {
    let server = start(GPIO_ADC, None);
    assert_report(
        &server,
        &[
            "constants=0,1,2,3,0,1,0,1",
            "never set=0,0",
            "output=0,nil,1",
            "output low=0",
            "inputs=1,0,0",
            "pull-up pin written=0",
            "trig=nil,nil,nil",
            "pin errors=bad argument #1 to 'write' (pin 0 to 12 expected, got 13),\
             bad argument #1 to 'read' (pin 0 to 12 expected, got -1),\
             bad argument #1 to 'read' (pin 0 to 12 expected, got 1.5),\
             bad argument #1 to 'mode' (pin 0 to 12 expected, got \"1\"),\
             bad argument #1 to 'trig' (pin 1 to 12 expected, got 0)",
            "value errors=bad argument #2 to 'write' (level gpio.HIGH or gpio.LOW expected, got 2),\
             bad argument #2 to 'write' (level gpio.HIGH or gpio.LOW expected, got nil),\
             bad argument #2 to 'mode' (gpio.INPUT, OUTPUT, INT or OPENDRAIN expected, got 7),\
             bad argument #2 to 'mode' (pin 0 has no gpio.INT),\
             bad argument #3 to 'mode' (gpio.FLOAT or PULLUP expected, got 2),\
             bad argument #2 to 'trig' ('up', 'down', 'both', 'low', 'high' or 'none' expected, \
             got \"sideways\"),\
             bad argument #3 (function expected, got number)",
            "adc=0,3300,false,false,0,255",
            "adc errors=bad argument #1 to 'read' (channel 0 expected, got 1),\
             bad argument #1 to 'read' (channel 0 expected, got nil),\
             bad argument #1 to 'force_init_mode' (adc.INIT_ADC or adc.INIT_VDD33 expected, got 3)",
        ],
    );
    // A pin keeps its level from one request callback to the next; no interrupt ever fires.
    assert_eq!(get(server.port, "/pin").text(), "0 fired=false");
    assert_eq!(get(server.port, "/on").text(), "on");
    assert_eq!(get(server.port, "/pin").text(), "1 fired=false");
    assert_eq!(get(server.port, "/off").text(), "off");
    assert_eq!(get(server.port, "/pin").text(), "0 fired=false");
}

const NOT_PROVIDED: &str = r##"
local function field(path)
    local v = _G
    for part in path:gmatch("[^.]+") do v = v[part] end
    return v
end
for _, path in ipairs({
    "file.mount", "file.format", "file.chdir", "file.fscfg", "file.on", "file.vol",
    "sjson.foo", "wifi.suspend", "wifi.startsmart", "wifi.sta.scan", "wifi.sta.getap",
    "wifi.ap.dhcp", "wifi.eventmon.reason.BOGUS", "wifi.eventmon.EVENT_MAX", "wifi.monitor",
    "gpio.serout", "gpio.pulse", "adc.setwidth", "adc.read_hall_sensor",
}) do
    show(path, try(field, path))
end
show("sjson objects", try(function() return sjson.encoder({}).write end),
    try(function() return sjson.decoder().read end))
show("provided", type(wifi.eventmon.reason.ASSOC_LEAVE), wifi.eventmon.reason["4WAY_HANDSHAKE_TIMEOUT"],
    type(file.list), type(sjson.decoder), type(gpio.trig), type(adc.readvdd33))
serve()
"##;

#[test]
fn missing_firmware_functions_raise_errors_naming_them() {
    let server = start(NOT_PROVIDED, None);
    let mut want: Vec<String> = [
        "file.mount",
        "file.format",
        "file.chdir",
        "file.fscfg",
        "file.on",
        "file.vol",
        "sjson.foo",
        "wifi.suspend",
        "wifi.startsmart",
        "wifi.sta.scan",
        "wifi.sta.getap",
        "wifi.ap.dhcp",
        "wifi.eventmon.reason.BOGUS",
        "wifi.eventmon.EVENT_MAX",
        "wifi.monitor",
        "gpio.serout",
        "gpio.pulse",
        "adc.setwidth",
        "adc.read_hall_sensor",
    ]
    .iter()
    .map(|name| format!("{name}={name} is not provided by ccserve"))
    .collect();
    want.push(
        "sjson objects=sjson.encoder.write is not provided by ccserve,\
         sjson.decoder.read is not provided by ccserve"
            .to_string(),
    );
    want.push("provided=number,15,function,function,function,function".to_string());
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_report(&server, &want);
}
