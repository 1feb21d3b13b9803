//! NodeMCU's `httpserver` (`require "httpserver"`, `src/nodemcu/`) and the program lifetime of
//! `--nodemcu` (callbacks keep running after the main chunk), with `node` and `tmr`, against the
//! real `ccserve` binary over real TCP on 127.0.0.1.
//!
//! Each upstream bug README lists is checked absent here: HTTP/1.0 and any method answered,
//! headers with `_` or empty values delivered, chunked bodies decoded, pipelining, one final
//! `ondata(nil)`, the real reason phrase, one status line whatever the call order, `send("")`
//! not ending the body, `100 Continue` with its blank line.
//!
//! Scripts print `LISTENING <port>` once bound and report what they saw on stdout; tests wait on
//! those lines or on bytes, always with a bound. Nothing sleeps to synchronise.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{connect, exchange, get, read_response, read_until, Server, WAIT};

/// Starts `source` as a NodeMCU program.
fn start(source: &str) -> Server {
    Server::start(source, &["--nodemcu"])
}

/// A server whose handler is `body` (with `req`, `res` in scope), on an OS-chosen port.
fn serve(body: &str) -> Server {
    start(&format!(
        "local srv = require('httpserver').createServer(0, function(req, res)\n{body}\nend)\n\
         print('LISTENING ' .. srv:getaddr())\n"
    ))
}

/// The upstream example's shape: a reply from `ondata(nil)`, in the documented call order
/// (`send(nil, code)`, `send_header`, `send(data)`, `finish()`), echoing what the callbacks saw.
const ECHO: &str = r#"
local seen = {}
req.onheader = function(self, name, value) seen[#seen + 1] = name .. "=" .. value end
local body, nils = {}, 0
req.ondata = function(self, chunk)
    if chunk then body[#body + 1] = chunk return end
    nils = nils + 1
    res:send(nil, 200)
    res:send_header("Connection", "close")
    res:send_header("X-Seen", table.concat(seen, ";"))
    res:send(req.method .. " " .. req.url .. "\n")
    res:send(table.concat(body))
    res:finish()
    print("NILS " .. nils)
end
"#;

#[test]
fn get_and_post_are_answered_with_headers_and_body_seen() {
    let server = serve(ECHO);
    let r = get(server.port, "/status?x=1");
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.text(), "GET /status?x=1\n");
    assert_eq!(r.header("x-seen"), Some("host=127.0.0.1;connection=close"));
    assert_eq!(r.header("connection"), Some("close"));
    server.expect_line("NILS 1");

    let post = b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n\
                 Content-Length: 11\r\nConnection: close\r\n\r\nhello=world";
    let r = exchange(server.port, post);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "POST /form\nhello=world");
    assert_eq!(
        r.header("x-seen"),
        Some("host=h;content-type=text/plain;content-length=11;connection=close")
    );
    server.expect_line("NILS 1");
}

#[test]
fn requests_upstream_drops_are_parsed_and_answered() {
    let server = serve(ECHO);
    // HTTP/1.0, a lower-case method, a header with `_` and one with an empty value.
    let r = exchange(
        server.port,
        b"get /old HTTP/1.0\r\nX_Under: a\r\nX-Empty:\r\n\r\n",
    );
    assert_eq!(r.status_line, "HTTP/1.0 200 OK");
    assert_eq!(r.text(), "get /old\n");
    assert_eq!(r.header("x-seen"), Some("x_under=a;x-empty="));
    // A chunked body is decoded before ondata.
    let r = exchange(
        server.port,
        b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(r.text(), "PUT /c\nhello world");
    server.expect_line("NILS 1");
    server.expect_line("NILS 1");
}

#[test]
fn pipelined_and_keep_alive_requests_each_get_their_response() {
    let server = serve(
        "req.ondata = function(self, chunk) if chunk == nil then res:finish(req.url) end end",
    );
    let mut s = connect(server.port);
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nPOST /two HTTP/1.1\r\nHost: h\r\n\
          Content-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    .unwrap();
    for want in ["/one", "/two", "/three"] {
        let r = read_response(&mut s, false).expect("a response");
        assert_eq!(r.text(), want);
        assert_eq!(r.header("content-length"), Some(&*want.len().to_string()));
    }
    // The same connection serves one more request later.
    s.write_all(b"GET /four HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().text(), "/four");
}

#[test]
fn status_line_is_right_whatever_the_call_order() {
    let server = serve(
        r#"
        if req.url == "/header-first" then
            res:send_header("X-A", "1")
            res:send(nil, 404)
            res:send("missing")
            res:finish(nil, 500) -- the first code given wins
        elseif req.url == "/codes" then
            res:finish("gone", 410)
        elseif req.url == "/empty" then
            res:send("a")
            res:send("")
            res:send("b")
            res:finish()
        elseif req.url == "/late-header" then
            res:send("body")
            print("SEND_HEADER " .. type(res.send_header))
            res:finish()
        elseif req.url == "/nothing" then
            res:finish()
        end
        "#,
    );
    let r = get(server.port, "/header-first");
    assert_eq!(r.status_line, "HTTP/1.1 404 Not Found");
    assert_eq!(r.header("x-a"), Some("1"));
    assert_eq!(r.text(), "missing");
    assert_eq!(get(server.port, "/codes").status_line, "HTTP/1.1 410 Gone");
    // send("") neither ends the body nor sends an empty chunk.
    assert_eq!(get(server.port, "/empty").text(), "ab");
    assert_eq!(get(server.port, "/late-header").text(), "body");
    server.expect_line("SEND_HEADER nil");
    let r = get(server.port, "/nothing");
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
}

#[test]
fn data_goes_out_as_it_is_sent_across_callbacks() {
    // /start sends a first piece and keeps `res`; /end finishes it from another request's
    // callback. The first piece must reach the client before /end is even asked.
    let server = serve(
        r#"
        if req.url == "/start" then
            res:send_header("Content-Type", "text/plain")
            res:send("first;")
            held = res
        else
            held:send("second;")
            held:finish("last")
            res:finish("ended")
        end
        "#,
    );
    let mut s = connect(server.port);
    s.write_all(b"GET /start HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let head = read_until(&mut s, b"first;");
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    assert_eq!(get(server.port, "/end").text(), "ended");
    let rest = read_until(&mut s, b"0\r\n\r\n");
    let rest = String::from_utf8_lossy(&rest).into_owned();
    assert!(rest.contains("second;") && rest.contains("last"), "{rest}");
}

#[test]
fn expect_continue_gets_a_complete_interim_response() {
    let server = serve(ECHO);
    let mut s = connect(server.port);
    s.write_all(
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let interim = read_until(&mut s, b"\r\n\r\n");
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"data").unwrap();
    let r = read_response(&mut s, false).expect("the response");
    assert_eq!(r.text(), "POST /up\ndata");
}

#[test]
fn handlers_set_late_are_used_and_conn_names_the_peer() {
    let server = serve(
        r#"
        req.onheader = function(self, name, value)
            -- ondata is chosen once the content type is known, as upstream's example suggests.
            if name == "content-type" and value == "application/json" then
                local parts = {}
                self.ondata = function(_, chunk)
                    if chunk then parts[#parts + 1] = chunk return end
                    local ip, port = req.conn:getpeer()
                    res:finish(("json %s from %s:%d"):format(table.concat(parts), ip, port))
                end
            end
        end
        "#,
    );
    let mut s = connect(server.port);
    let local_port = s.local_addr().unwrap().port();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n\
          Content-Length: 2\r\n\r\n{}",
    )
    .unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.text(), format!("json {{}} from 127.0.0.1:{local_port}"));
}

#[test]
fn a_failing_callback_is_reported_and_the_server_goes_on() {
    let server = serve(
        r#"
        if req.url == "/boom" then error("handler exploded") end
        if req.url == "/inject" then res:send_header("X-A", "a\r\nB: c") end
        if req.url == "/late" then
            req.ondata = function() error("ondata exploded") end
            return
        end
        res:finish("still here")
        "#,
    );
    let r = get(server.port, "/boom");
    assert_eq!(r.status, 500);
    let line = server
        .stderr_line_containing("handler exploded", WAIT)
        .expect("the error on stderr");
    assert!(line.contains(".lua:3: handler exploded"), "{line}");
    assert_eq!(get(server.port, "/ok").text(), "still here");
    // A header value with a line break raises in the handler: `500` at once (before, the
    // engine refused the head after the callback and the client was left waiting).
    let r = get(server.port, "/inject");
    assert_eq!(r.status, 500);
    let line = server
        .stderr_line_containing("CR, LF or NUL", WAIT)
        .expect("the error on stderr");
    assert!(
        line.contains(".lua:4: bad argument #2 to 'send_header'"),
        "{line}"
    );
    // An error after the handler returned: reported, and the next request still served.
    let mut s = connect(server.port);
    s.write_all(b"GET /late HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    server
        .stderr_line_containing("ondata exploded", WAIT)
        .expect("the error on stderr");
    assert_eq!(get(server.port, "/ok").text(), "still here");
}

#[test]
fn setonerror_receives_callback_errors() {
    let server = start(
        r#"
        node.setonerror(function(message) print("CAUGHT " .. message:match("[^\n]*")) end)
        local srv = require("httpserver").createServer(0, function(req, res)
            res:finish("answered")
            error("after the answer")
        end)
        print("LISTENING " .. srv:getaddr())
        "#,
    );
    assert_eq!(get(server.port, "/").text(), "answered");
    let line = server
        .line_starting("CAUGHT ", WAIT)
        .expect("the handler's report");
    assert!(line.ends_with(".lua:5: after the answer"), "{line}");
}

#[test]
fn bad_arguments_raise_errors_naming_them() {
    let server = serve(
        r#"
        local what = req.url:sub(2)
        local ok, err
        if what == "status" then ok, err = pcall(function() res:send("x", "200") end)
        elseif what == "data" then ok, err = pcall(res.send, res, {}, 200)
        elseif what == "header" then ok, err = pcall(res.send_header, res, "X-A", {})
        elseif what == "crlf" then ok, err = pcall(res.send_header, res, "X-A", "a\r\nB: c")
        elseif what == "name" then ok, err = pcall(res.send_header, res, "X A", "v")
        elseif what == "conn" then ok, err = pcall(function() req.conn:send("x") end)
        elseif what == "dot" then ok, err = pcall(function() res.send("x") end)
        end
        res:finish(tostring(err))
        "#,
    );
    // Arguments are counted as documented, without `self`, and the position is the script's.
    let status = get(server.port, "/status").text();
    assert!(
        status.ends_with(".lua:5: bad argument #2 to 'send' (number expected, got string)"),
        "{status}"
    );
    assert_eq!(
        get(server.port, "/data").text(),
        "bad argument #1 to 'send' (string expected, got table)"
    );
    assert_eq!(
        get(server.port, "/header").text(),
        "bad argument #2 to 'send_header' (string expected, got table)"
    );
    // A value that would end the header line early, or a name that is not a token, is refused
    // (the firmware would send it as it is).
    assert_eq!(
        get(server.port, "/crlf").text(),
        "bad argument #2 to 'send_header' (the value contains CR, LF or NUL)"
    );
    assert_eq!(
        get(server.port, "/name").text(),
        "bad argument #1 to 'send_header' (not a header name: a token such as X-Name)"
    );
    assert!(get(server.port, "/conn").text().contains("req.conn:send"));
    // send is a method, as upstream's (it uses `self`); only finish is also a plain function.
    assert!(get(server.port, "/dot")
        .text()
        .ends_with(".lua:11: send: call it as res:send(...)"));
}

#[test]
fn the_program_ends_when_its_last_server_and_timer_are_gone() {
    // /close closes the server; the program then has nothing left and exits by itself.
    let mut server = start(
        r#"
        local srv
        srv = require("httpserver").createServer(0, function(req, res)
            res:finish("bye")
            srv:close()
        end)
        print("LISTENING " .. srv:getaddr())
        "#,
    );
    assert_eq!(get(server.port, "/close").text(), "bye");
    let status = server.wait_exit(WAIT).expect("exited by itself");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err());
}

#[test]
fn a_second_server_on_the_same_port_replaces_the_first() {
    let server = start(
        r#"
        local hs = require("httpserver")
        local first = hs.createServer(0, function(req, res) res:finish("first") end)
        local port = first:getaddr()
        hs.createServer(port, function(req, res) res:finish("second") end)
        print("LISTENING " .. port)
        "#,
    );
    assert_eq!(get(server.port, "/").text(), "second");
}

#[test]
fn ctrl_c_stops_a_serving_program() {
    let mut server = serve("res:finish('x')");
    assert_eq!(get(server.port, "/").text(), "x");
    server.interrupt();
    let status = server.wait_exit(WAIT).expect("stopped");
    assert_eq!(status.code(), Some(130));
}

#[test]
fn oversized_streamed_body_gets_413() {
    let server = Server::start(
        "local srv = require('httpserver').createServer(0, function(req, res)\n\
         req.ondata = function(_, c) if not c then res:finish('ok') end end end)\n\
         print('LISTENING ' .. srv:getaddr())\n",
        &["--nodemcu", "--max-stream-body", "10"],
    );
    let r = exchange(
        server.port,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n01234567890123456789",
    );
    assert_eq!(r.status, 413);
}

#[test]
fn without_the_flag_httpserver_says_how_to_run_it() {
    let mut server = Server::spawn("local hs = require('httpserver')", &[], &[]);
    let status = server.wait_exit(WAIT).expect("exits");
    assert_eq!(status.code(), Some(1));
    assert!(server
        .stderr()
        .contains("run the program with ccserve --nodemcu"));
    let mut server = Server::spawn("print(node.heap())", &[], &[]);
    server.wait_exit(WAIT).expect("exits");
    assert!(server
        .stderr()
        .contains("is this a NodeMCU program? run it with ccserve --nodemcu"));
}

#[test]
fn missing_firmware_modules_and_functions_are_named() {
    let mut server = Server::spawn("mqtt.Client('id', 120)", &["--nodemcu"], &[]);
    server.wait_exit(WAIT).expect("exits");
    assert!(
        server
            .stderr()
            .contains("NodeMCU's 'mqtt' module is not provided by ccserve"),
        "{}",
        server.stderr()
    );
    let mut server = Server::spawn("node.dsleep(1000)", &["--nodemcu"], &[]);
    server.wait_exit(WAIT).expect("exits");
    assert!(server
        .stderr()
        .contains("node.dsleep is not provided by ccserve"));
    // NodeMCU's `http` is a different client from CraftOS's: CraftOS's functions are not there.
    let mut server = Server::spawn(
        "print('HTTP ' .. type(http.get) .. ' ' .. select(2, pcall(function() return http.listen end)))",
        &["--nodemcu"],
        &[],
    );
    server.wait_exit(WAIT).expect("exits");
    let out = server.rest_of_stdout();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].starts_with("HTTP function ")
            && out[0].ends_with("http.listen is not provided by ccserve"),
        "{out:?}"
    );
}

#[test]
fn the_http_client_calls_back_with_code_data_and_headers() {
    // The program calls its own server: a GET with headers given as a string, a POST echoed, a
    // 404, a refused port (-1) and a malformed URL (-1); it ends once every callback ran.
    let mut server = Server::spawn(
        r#"
        local srv = require("httpserver").createServer(0, function(req, res)
            local seen = {}
            req.onheader = function(_, name, value) seen[name] = value end
            local body = {}
            req.ondata = function(_, chunk)
                if chunk then body[#body + 1] = chunk return end
                if req.url == "/missing" then return res:finish("nope", 404) end
                res:send_header("X-Echo", tostring(seen["x-token"]))
                res:finish(req.method .. " " .. table.concat(body))
            end
        end)
        local port = srv:getaddr()
        local base = "http://127.0.0.1:" .. port
        local left = 5
        local function done() left = left - 1 if left == 0 then srv:close() end end
        http.get(base .. "/a", "X-Token: t1\r\nAccept: */*\r\n", function(code, data, headers)
            print("GET", code, data, headers["x-echo"]) done()
        end)
        http.post(base .. "/b", { ["X-Token"] = "t2" }, "payload", function(code, data, headers)
            print("POST", code, data, headers["x-echo"]) done()
        end)
        http.get(base .. "/missing", nil, function(code, data) print("404", code, data) done() end)
        http.get("http://127.0.0.1:1/", nil, function(code, data) print("REFUSED", code, data) done() end)
        http.request("nonsense", "GET", nil, nil, function(code, data) print("BAD", code, data) done() end)
        "#,
        &["--nodemcu"],
        &[],
    );
    let status = server
        .wait_exit(WAIT)
        .expect("ends once every callback ran");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let mut out = server.rest_of_stdout();
    out.sort();
    assert_eq!(
        out,
        [
            "404\t404\tnope",
            "BAD\t-1\tnil",
            "GET\t200\tGET \tt1",
            "POST\t200\tPOST payload\tt2",
            "REFUSED\t-1\tnil",
        ]
    );
}

#[test]
fn node_reports_the_host() {
    let mut server = Server::spawn(
        r#"
        print("HEAP", node.heap())
        print("CHIP " .. node.chipid())
        local up = node.uptime()
        print("UPTIME " .. tostring(up >= 0))
        node.compile(arg[0]) -- this very file parses
        print("COMPILED")
        node.compile("no-such-file.lua")
        "#,
        &["--nodemcu", "--id", "4711"],
        &[],
    );
    server.wait_exit(WAIT).expect("exits");
    let out = server.rest_of_stdout();
    let heap: f64 = out[0]
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .expect("a number");
    assert!(heap > 0.0, "{out:?}");
    assert_eq!(out[1], "CHIP 4711");
    assert_eq!(out[2], "UPTIME true");
    assert_eq!(out[3], "COMPILED");
    assert!(
        server.stderr().contains("no-such-file.lua"),
        "{}",
        server.stderr()
    );
}

#[test]
fn tasks_run_after_the_main_chunk_in_order() {
    let mut server = Server::spawn(
        r#"
        node.task.post(function() print("TASK 1") end)
        node.task.post(node.task.HIGH_PRIORITY, function()
            print("TASK 2")
            node.task.post(function() print("TASK 3") end)
        end)
        print("MAIN END")
        "#,
        &["--nodemcu"],
        &[],
    );
    let status = server.wait_exit(WAIT).expect("exits once the tasks ran");
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        server.rest_of_stdout(),
        ["MAIN END", "TASK 1", "TASK 2", "TASK 3"]
    );
}

#[test]
fn timers_fire_in_every_mode_and_the_program_ends_with_the_last() {
    let mut server = Server::spawn(
        r#"
        local log = {}
        local function say(s) print(s) end
        -- ALARM_AUTO: three ticks, then it unregisters itself.
        local auto, n = tmr.create(), 0
        auto:register(5, tmr.ALARM_AUTO, function(t)
            n = n + 1
            if n == 3 then
                t:unregister()
                say("AUTO 3 " .. tostring(t:state()))
            end
        end)
        say("START " .. tostring(auto:start()))
        say("STATE " .. tostring(select(1, auto:state())) .. " " .. select(2, auto:state()))
        -- ALARM_SEMI: fires once, stays registered, fires again when started again.
        local semi, m = tmr.create(), 0
        semi:alarm(5, tmr.ALARM_SEMI, function(t)
            m = m + 1
            say("SEMI " .. m .. " " .. tostring((t:state())))
            if m == 1 then t:start() end
        end)
        -- ALARM_SINGLE: fires once and is unregistered.
        local single = tmr.create()
        single:alarm(5, tmr.ALARM_SINGLE, function(t) say("SINGLE " .. tostring(t:state())) end)
        -- stop() before it fires: never fires; interval() changes a running one.
        local stopped = tmr.create()
        stopped:alarm(1, tmr.ALARM_SINGLE, function() say("NEVER") end)
        say("STOP " .. tostring(stopped:stop()) .. " " .. tostring(stopped:stop()))
        local slow = tmr.create()
        slow:alarm(3600000, tmr.ALARM_SINGLE, function() say("RETIMED") end)
        slow:interval(5)
        -- The old static API.
        tmr.alarm(2, 5, tmr.ALARM_SINGLE, function() say("STATIC") end)
        say("UNREGISTERED " .. tostring(tmr.create():start()))
        local t0 = tmr.now()
        tmr.delay(2000)
        say("DELAY " .. tostring(tmr.now() - t0 >= 2000) .. " " .. type(tmr.time()))
        say("BAD " .. select(2, pcall(tmr.create().register, tmr.create(), 0, 0, print)))
        "#,
        &["--nodemcu"],
        &[],
    );
    let status = server.wait_exit(WAIT).expect("ends once no timer is left");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let mut out = server.rest_of_stdout();
    assert_eq!(
        out[..5],
        [
            "START true",
            "STATE true 2",
            "STOP true false",
            "UNREGISTERED false",
            "DELAY true number",
        ]
    );
    assert!(
        out[5].starts_with("BAD ") && out[5].contains("bad argument #1"),
        "{}",
        out[5]
    );
    let mut fired: Vec<String> = out.split_off(6);
    fired.sort();
    assert_eq!(
        fired,
        [
            "AUTO 3 nil",
            "RETIMED",
            "SEMI 1 false",
            "SEMI 2 false",
            "SINGLE nil",
            "STATIC"
        ]
    );
}

#[test]
fn node_restart_runs_the_program_again() {
    // First run: no marker file, so it writes one and restarts. Second run: it sees the marker,
    // removes it and ends.
    let dir = tempdir();
    let script = dir.join("init.lua");
    std::fs::write(
        &script,
        r#"
        if fs.exists("marker") then
            fs.delete("marker")
            print("SECOND RUN")
        else
            local f = fs.open("marker", "w") f.write("x") f.close()
            print("FIRST RUN")
            node.restart()
            print("NOT REACHED")
        end
        "#,
    )
    .unwrap();
    let mut server = Server::spawn_exact(&[
        "--nodemcu".as_ref(),
        "--root".as_ref(),
        dir.as_os_str(),
        script.as_os_str(),
    ]);
    let status = server.wait_exit(WAIT).expect("ends after the second run");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert_eq!(server.rest_of_stdout(), ["FIRST RUN", "SECOND RUN"]);
    assert!(!dir.join("marker").exists());
}

/// A fresh directory under the test tmpdir.
fn tempdir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "nodemcu-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_slow_reader_gets_every_byte_of_a_large_streamed_response() {
    // 2 MiB sent in 64 KiB pieces, one per timer tick: more than the stream buffer, so output
    // waits for the client and resumes as it reads.
    let server = serve(
        r#"
        local piece, n = string.rep("x", 65535) .. "\n", 0
        tmr.create():alarm(1, tmr.ALARM_AUTO, function(t)
            n = n + 1
            res:send(piece)
            if n == 32 then t:unregister() res:finish() end
        end)
        "#,
    );
    let mut s = common::connect_with_small_window(server.port, 4096);
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    let (_, body) = text.split_once("\r\n\r\n").expect("a head");
    assert_eq!(body.matches('x').count(), 32 * 65535);
}
