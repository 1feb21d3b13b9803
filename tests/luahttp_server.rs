//! lua-http's `http.server` (`require "http.server"`, `src/luahttp/`) against the real `ccserve`
//! binary over real TCP on 127.0.0.1: every option of `listen{}`, every server and stream method,
//! the `nil, message, errno` convention and the timeouts, and the guarantees ccserve gives every
//! API (malformed requests, stalled and oversized heads, vanishing clients).
//!
//! Scripts print `LISTENING <port>` once bound, and report what they saw on stdout; tests wait on
//! those lines, on bytes, or on closed sockets, always with a bound. Nothing sleeps to
//! synchronise ("nothing arrives for 300 ms" is only used to assert absence).

mod common;

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{
    closed_within, connect, exchange, get, read_response, read_to_close, read_until, Response,
    Server, WAIT,
};

/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// Upper bound for "answered while something else is stuck". Generous: the point is "not
/// blocked", not speed.
const QUICK: Duration = Duration::from_secs(5);

/// What every script starts with: the modules; `respond(stream, status, body, extra_headers)`,
/// which answers with a `content-length` (or ends with the head when `body` is nil); and
/// `show(...)`, its arguments as strings joined with spaces (`nil Broken pipe 32`).
const PRELUDE: &str = r##"
local http_server = require "http.server"
local http_headers = require "http.headers"
local cqueues = require "cqueues"
local cc = require "cqueues.condition"
local function respond(stream, status, body, extra)
    local h = http_headers.new()
    h:append(":status", tostring(status))
    for name, value in pairs(extra or {}) do h:append(name, value) end
    if body then
        h:append("content-length", tostring(#body))
        assert(stream:write_headers(h, false))
        assert(stream:write_chunk(body, true))
    else
        assert(stream:write_headers(h, true))
    end
end
local function show(...)
    local out = {}
    for i = 1, select("#", ...) do out[i] = tostring((select(i, ...))) end
    return table.concat(out, " ")
end
"##;

/// A script serving 127.0.0.1 on an OS-chosen port with `onstream` as the handler's body
/// (`server` and `stream` in scope) and `options` as extra fields of `listen{}`; it prints
/// `LISTENING <port>`, then runs `assert(server:loop())` and prints `LOOP DONE`.
fn script(options: &str, onstream: &str) -> String {
    format!(
        "{PRELUDE}\n\
         local server = assert(http_server.listen {{\n\
             host = \"127.0.0.1\",\n\
             port = 0,\n\
             {options}\n\
             onstream = function(server, stream)\n{onstream}\nend,\n\
         }})\n\
         assert(server:listen())\n\
         print(\"LISTENING \" .. select(3, server:localname()))\n\
         assert(server:loop())\n\
         print(\"LOOP DONE\")\n"
    )
}

fn start(options: &str, onstream: &str) -> Server {
    Server::start(&script(options, onstream), &[])
}

fn read_one(stream: &mut TcpStream) -> Response {
    read_response(stream, false).expect("a response before the connection closed")
}

/// Asserts nothing arrives on `stream` (no bytes, no close) for `QUIET`.
fn assert_quiet(stream: &mut TcpStream, what: &str) {
    common::assert_quiet_for(stream, QUIET, what);
}

/// Asserts nothing listens on 127.0.0.1:`port`.
fn assert_refused(port: u16) {
    match TcpStream::connect(("127.0.0.1", port)) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("port {port} still accepts connections"),
    }
}

/// The next stdout line, which must be `want`.
fn expect_line(server: &Server, want: &str) {
    match server.next_line(WAIT) {
        Some(line) => assert_eq!(line, want, "stderr:\n{}", server.stderr()),
        None => panic!(
            "no stdout line (wanted {want:?}); stderr:\n{}",
            server.stderr()
        ),
    }
}

/// The next stdout line starting with `prefix`, with the prefix removed.
fn line_after(server: &Server, prefix: &str) -> String {
    match server.line_starting(prefix, WAIT) {
        Some(line) => line[prefix.len()..].to_string(),
        None => panic!(
            "no stdout line starting {prefix:?}; stderr:\n{}",
            server.stderr()
        ),
    }
}

/// A keep-alive GET.
fn get_ka(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// A port nothing listens on right now (bound by the OS, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Answers every request `200` with its path as the body.
const ECHO_PATH: &str = r#"
    local h = assert(stream:get_headers())
    respond(stream, 200, h:get(":path"))
"#;

/// Starts `src` (with `args` after the script) and waits for `LISTENING <port>`; returns the
/// server and the stdout lines printed before that one.
fn spawn_listening(src: &str, extra: &[&str], args: &[&str]) -> (Server, Vec<String>) {
    let mut server = Server::spawn(src, extra, args);
    let mut before = Vec::new();
    loop {
        match server.next_line(WAIT) {
            Some(line) if line.starts_with("LISTENING ") => {
                server.port = line["LISTENING ".len()..].trim().parse().expect("port");
                return (server, before);
            }
            Some(line) => before.push(line),
            None => panic!(
                "no LISTENING line; stdout so far {before:?}; stderr:\n{}",
                server.stderr()
            ),
        }
    }
}

/// Runs a script that serves nothing to its end; returns its stdout lines and exit code.
fn run_to_end(src: &str) -> (Vec<String>, Option<i32>, String) {
    let mut server = Server::spawn(src, &[], &[]);
    let code = server.exit_code();
    (server.rest_of_stdout(), code, server.stderr_when_closed())
}

// ---------------------------------------------------------------------------------------------
// http.server.listen{...}
// ---------------------------------------------------------------------------------------------

#[test]
fn listen_binds_an_os_chosen_port_at_once_and_localname_reports_it() {
    let src = format!(
        "{PRELUDE}\n\
         local server = assert(http_server.listen {{ host = \"127.0.0.1\", port = 0, tls = false, \
             onstream = function(server, stream) {ECHO_PATH} end }})\n\
         print(\"BEFORE \" .. show(server:localname()))\n\
         print(\"LISTEN \" .. show(server:listen()))\n\
         print(\"AFTER \" .. show(server:localname()))\n\
         print(\"LISTENING \" .. select(3, server:localname()))\n\
         assert(server:loop())\n"
    );
    let (server, before) = spawn_listening(&src, &[], &[]);
    let name = format!("2 127.0.0.1 {}", server.port);
    assert_ne!(server.port, 0);
    assert_eq!(
        before,
        [
            format!("BEFORE {name}"),
            "LISTEN true".into(),
            format!("AFTER {name}")
        ]
    );
    let resp = get(server.port, "/hello");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "/hello");
}

#[test]
fn port_given_as_a_numeric_string_binds_that_port() {
    let port = free_port();
    let src = format!(
        "{PRELUDE}\n\
         local wanted = ...\n\
         assert(type(wanted) == \"string\")\n\
         local server = assert(http_server.listen {{ host = \"127.0.0.1\", port = wanted, \
             onstream = function(server, stream) {ECHO_PATH} end }})\n\
         print(\"LISTENING \" .. select(3, server:localname()))\n\
         assert(server:loop())\n"
    );
    let (server, _) = spawn_listening(&src, &[], &[&port.to_string()]);
    assert_eq!(server.port, port);
    assert_eq!(get(port, "/s").text(), "/s");
}

#[test]
fn unsupported_and_invalid_options_raise_clear_errors() {
    let src = format!(
        "{PRELUDE}\n\
         local function try(options)\n\
             local ok, err = pcall(http_server.listen, options)\n\
             print(ok and \"OK\" or (\"ERR \" .. tostring(err)))\n\
         end\n\
         local function onstream() end\n\
         try {{ host = \"127.0.0.1\", port = 0, tls = true, onstream = onstream }}\n\
         try {{ host = \"127.0.0.1\", port = 0, ctx = {{}}, onstream = onstream }}\n\
         try {{ path = 5, onstream = onstream }}\n\
         try {{ path = \"/tmp/ccserve-test.sock\", mode = \"rwx\", onstream = onstream }}\n\
         try {{ host = \"127.0.0.1\", port = 0, version = 2, onstream = onstream }}\n\
         try {{ host = \"127.0.0.1\", port = 0 }}\n\
         try {{ port = 0, onstream = onstream }}\n\
         try {{ host = \"127.0.0.1\", onstream = onstream }}\n\
         try {{ host = \"127.0.0.1\", port = \"http\", onstream = onstream }}\n\
         try {{ host = \"example.com\", port = 0, onstream = onstream }}\n\
         try {{ host = \"127.0.0.1\", port = 0, onstream = onstream, cq = {{}} }}\n\
         try {{ host = \"127.0.0.1\", port = 70000, onstream = onstream }}\n\
         try {{ host = \"127.0.0.1\", port = 0, onstream = onstream, max_concurrent = \"x\" }}\n\
         try {{ host = \"127.0.0.1\", port = 0, onstream = onstream, intra_stream_timeout = -1 }}\n\
         try {{ host = \"127.0.0.1\", port = 0, onstream = onstream, reuseport = \"yes\" }}\n\
         local ok, err = pcall(http_server.new, {{ socket = {{}}, onstream = onstream }})\n\
         print(\"NEW \" .. tostring(err))\n"
    );
    let (lines, code, stderr) = run_to_end(&src);
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
    let expect = [
        if cfg!(feature = "tls") {
            "TLS needs a certificate: start ccserve with --tls-cert"
        } else {
            "TLS is not in this build"
        },
        "a luaossl context (ctx) is not supported",
        "'path' must be a string",
        "'mode' must be octal permissions",
        "only HTTP/1.0 and HTTP/1.1",
        "missing 'onstream'",
        "need host or path",
        "need port",
        "'port' must be a whole number",
        "is not an IP address",
        "cqueue controller",
        "out of range",
        "'max_concurrent' must be a positive number",
        "'intra_stream_timeout' must be a positive number",
        "'reuseport' must be a boolean",
        "not supported by ccserve",
    ];
    assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    for (line, want) in lines.iter().zip(expect) {
        assert!(line.contains(want), "{line:?} should mention {want:?}");
        assert!(
            !line.starts_with("OK"),
            "{line:?}: the call should have failed"
        );
    }
}

#[test]
fn version_pins_are_accepted_and_two_servers_run_in_one_script() {
    let src = format!(
        "{PRELUDE}\n\
         local function onstream(server, stream)\n\
             local h = assert(stream:get_headers())\n\
             respond(stream, 200, (\"%s %.1f\"):format(h:get(\":path\"), stream.connection.version))\n\
         end\n\
         local one = assert(http_server.listen {{ host = \"127.0.0.1\", port = 0, version = 1.0, \
             onstream = onstream }})\n\
         local two = assert(http_server.listen {{ host = \"127.0.0.1\", port = 0, version = 1.1, \
             onstream = onstream }})\n\
         print(\"SECOND \" .. select(3, two:localname()))\n\
         print(\"SAME \" .. show(http_server.listen {{ host = \"127.0.0.1\", reuseport = true, \
             port = select(3, one:localname()), onstream = onstream }}))\n\
         print(\"LISTENING \" .. select(3, one:localname()))\n\
         assert(one:loop())\n"
    );
    let (server, before) = spawn_listening(&src, &[], &[]);
    let second: u16 = before[0]["SECOND ".len()..].parse().unwrap();
    // A second server of the same script on the same port is refused (even with `reuseport`:
    // one server per port in a script).
    assert!(
        before[1].starts_with("SAME nil Address already in use") && before[1].ends_with(" 98"),
        "{}",
        before[1]
    );
    assert_eq!(get(server.port, "/one").text(), "/one 1.0");
    assert_eq!(get(second, "/two").text(), "/two 1.1");
}

#[test]
fn max_concurrent_limits_the_open_connections() {
    let server = start("max_concurrent = 1,", ECHO_PATH);
    let mut first = connect(server.port);
    first.write_all(get_ka("/first").as_bytes()).unwrap();
    assert_eq!(read_one(&mut first).text(), "/first");
    // The first connection is still open: a second one is refused with 503 (lua-http would
    // leave it waiting until the first closes).
    let mut second = connect(server.port);
    let resp = read_response(&mut second, false);
    if let Some(resp) = resp {
        assert_eq!(resp.status, 503, "{resp:?}");
    }
    assert!(closed_within(&mut second, WAIT));
    drop(first);
    // Once the first connection's thread has ended, a new client is served.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut s = connect(server.port);
        s.write_all(b"GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        match read_response(&mut s, false) {
            Some(resp) if resp.status == 200 => {
                assert_eq!(resp.text(), "/third");
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "still refused after {WAIT:?}: {other:?}"
            ),
        }
        // The slot frees when the first connection's thread ends: nothing to wait on but time.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connection_setup_timeout_bounds_the_time_to_send_a_request_head() {
    let server = start("connection_setup_timeout = 1,", ECHO_PATH);
    let mut s = connect(server.port);
    let started = Instant::now();
    s.write_all(b"GET /slow HTTP/1.1\r\nHo").unwrap();
    let resp = read_one(&mut s);
    let took = started.elapsed();
    assert_eq!(resp.status, 408);
    assert!(took >= Duration::from_millis(800), "408 after {took:?}");
    assert!(took < QUICK, "408 only after {took:?}");
    assert!(closed_within(&mut s, WAIT));
    // Others are served meanwhile and after.
    assert_eq!(get(server.port, "/next").text(), "/next");
}

#[test]
fn intra_stream_timeout_closes_idle_keep_alive_connections() {
    let server = start("intra_stream_timeout = 0.5,", ECHO_PATH);
    let mut s = connect(server.port);
    s.write_all(get_ka("/a").as_bytes()).unwrap();
    assert_eq!(read_one(&mut s).text(), "/a");
    // A request right after the previous one is served on the same connection. The server's
    // idle time starts after its answer, so it is at least the time since this request went.
    let idle_since = Instant::now();
    s.write_all(get_ka("/b").as_bytes()).unwrap();
    assert_eq!(read_one(&mut s).text(), "/b");
    assert!(closed_within(&mut s, QUICK), "idle connection left open");
    let idle = idle_since.elapsed();
    assert!(idle >= Duration::from_millis(400), "closed after {idle:?}");
    // A connection that never sends anything is closed after the same time (from its accept,
    // which is after `started`).
    let started = Instant::now();
    let mut silent = connect(server.port);
    assert!(
        closed_within(&mut silent, QUICK),
        "silent connection left open"
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[test]
fn reuseaddr_lets_a_closed_server_port_be_bound_again_at_once() {
    let src = format!(
        "{PRELUDE}\n\
         local function onstream(server, stream)\n\
             local path = assert(stream:get_headers()):get(\":path\")\n\
             respond(stream, 200, path)\n\
             if path == \"/close\" then server:close() end\n\
         end\n\
         local server = assert(http_server.listen {{ host = \"127.0.0.1\", port = 0, \
             reuseaddr = true, onstream = onstream }})\n\
         local port = select(3, server:localname())\n\
         print(\"LISTENING \" .. port)\n\
         assert(server:loop())\n\
         local again = assert(http_server.listen {{ host = \"127.0.0.1\", port = port, \
             reuseaddr = true, onstream = onstream }})\n\
         print(\"AGAIN \" .. select(3, again:localname()))\n\
         assert(again:loop())\n\
         print(\"DONE\")\n"
    );
    let (mut server, _) = spawn_listening(&src, &[], &[]);
    // The server closes these connections first, so their ports sit in TIME_WAIT on its side.
    assert_eq!(get(server.port, "/one").text(), "/one");
    assert_eq!(get(server.port, "/close").text(), "/close");
    expect_line(&server, &format!("AGAIN {}", server.port));
    assert_eq!(get(server.port, "/two").text(), "/two");
    assert_eq!(get(server.port, "/close").text(), "/close");
    expect_line(&server, "DONE");
    assert_eq!(server.exit_code(), Some(0));
}

/// A script listening on the port given as its argument (0: any) with `options`, answering
/// `name` to everything, or printing `FAIL nil, message, errno` when the port cannot be bound.
fn named_server(name: &str, options: &str) -> String {
    format!(
        "{PRELUDE}\n\
         local server, err, errno = http_server.listen {{ host = \"127.0.0.1\", \
             port = tonumber(...), {options} \
             onstream = function(server, stream) respond(stream, 200, \"{name}\") end }}\n\
         if not server then print(\"FAIL \" .. show(server, err, errno)) return end\n\
         print(\"LISTENING \" .. select(3, server:localname()))\n\
         assert(server:loop())\n"
    )
}

#[test]
fn binding_a_port_in_use_returns_nil_message_errno() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let mut server = Server::spawn(&named_server("x", ""), &[], &[&port.to_string()]);
    let line = line_after(&server, "FAIL ");
    assert!(
        line.starts_with("nil Address already in use") && line.ends_with(" 98"),
        "{line:?}"
    );
    assert_eq!(server.exit_code(), Some(0));
}

#[test]
fn reuseport_lets_two_processes_share_a_port() {
    let (first, _) = spawn_listening(&named_server("first", "reuseport = true,"), &[], &["0"]);
    let port = first.port.to_string();
    let (second, _) = spawn_listening(&named_server("second", "reuseport = true,"), &[], &[&port]);
    assert_eq!(second.port, first.port);
    // Without the flag the port is refused.
    let mut third = Server::spawn(&named_server("third", ""), &[], &[&port]);
    let line = line_after(&third, "FAIL ");
    assert!(line.ends_with(" 98"), "{line:?}");
    assert_eq!(third.exit_code(), Some(0));
    // Both serve; with the first gone, the second serves everything.
    for _ in 0..4 {
        let body = get(first.port, "/").text();
        assert!(body == "first" || body == "second", "{body:?}");
    }
    drop(first);
    for _ in 0..4 {
        assert_eq!(get(second.port, "/").text(), "second");
    }
}

/// A connection to `[addr]:port`.
fn connect_to(addr: &str, port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect((addr, port))?;
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    Ok(s)
}

#[test]
fn v6only_listeners_on_ipv6_addresses() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let src = format!(
        "{PRELUDE}\n\
         local function onstream(server, stream)\n\
             assert(stream:get_headers())\n\
             respond(stream, 200, show(stream:peername()) .. \" | \" .. show(stream:localname()))\n\
         end\n\
         local loopback = assert(http_server.listen {{ host = \"::1\", port = 0, v6only = true, \
             onstream = onstream }})\n\
         local only6 = assert(http_server.listen {{ host = \"::\", port = 0, v6only = true, \
             onstream = onstream }})\n\
         local both = assert(http_server.listen {{ host = \"::\", port = 0, v6only = false, \
             onstream = onstream }})\n\
         print(\"NAMES \" .. show(loopback:localname()) .. \" | \" .. show(only6:localname()))\n\
         print(\"ONLY6 \" .. select(3, only6:localname()))\n\
         print(\"BOTH \" .. select(3, both:localname()))\n\
         print(\"LISTENING \" .. select(3, loopback:localname()))\n\
         assert(loopback:loop())\n"
    );
    let (server, before) = spawn_listening(&src, &[], &[]);
    let only6: u16 = before[1]["ONLY6 ".len()..].parse().unwrap();
    let both: u16 = before[2]["BOTH ".len()..].parse().unwrap();
    assert_eq!(
        before[0],
        format!("NAMES 10 ::1 {} | 10 :: {only6}", server.port)
    );
    let ask = |addr: &str, port: u16| {
        let mut s = connect_to(addr, port).expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let local = s.local_addr().unwrap();
        (read_one(&mut s).text(), local)
    };
    let (body, local) = ask("::1", server.port);
    assert_eq!(
        body,
        format!("10 ::1 {} | 10 ::1 {}", local.port(), server.port)
    );
    // `v6only = true` on `::`: IPv6 only; `false`: IPv4 clients too (as mapped addresses).
    assert!(ask("::1", only6).0.starts_with("10 ::1 "));
    match connect_to("127.0.0.1", only6) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused),
        Ok(_) => panic!("an IPv4 client reached a v6only listener"),
    }
    assert!(ask("::1", both).0.starts_with("10 ::1 "));
    let (body, _) = ask("127.0.0.1", both);
    assert!(body.starts_with("10 ::ffff:127.0.0.1 "), "{body:?}");
}

// ---------------------------------------------------------------------------------------------
// Server methods
// ---------------------------------------------------------------------------------------------

/// Answers its path, after `server:pause()` for `/pause`, `server:resume()` for `/resume`, and
/// `server:close()` (after answering) for `/close`.
const CONTROL: &str = r#"
    local path = assert(stream:get_headers()):get(":path")
    if path == "/pause" then server:pause() elseif path == "/resume" then server:resume() end
    print("HANDLED " .. path)
    respond(stream, 200, path)
    if path == "/close" then
        server:close()
        print("CLOSED " .. show(server:listen()) .. " | " .. show(server:localname()))
    end
"#;

#[test]
fn pause_holds_new_clients_until_resume_while_open_connections_go_on() {
    let server = start("", CONTROL);
    let mut control = connect(server.port);
    control.write_all(get_ka("/pause").as_bytes()).unwrap();
    assert_eq!(read_one(&mut control).text(), "/pause");
    expect_line(&server, "HANDLED /pause");
    let mut waiting = connect(server.port);
    waiting.write_all(get_ka("/held").as_bytes()).unwrap();
    assert_quiet(&mut waiting, "a new client while paused");
    // An open connection is still served, and resumes the server.
    control.write_all(get_ka("/resume").as_bytes()).unwrap();
    assert_eq!(read_one(&mut control).text(), "/resume");
    expect_line(&server, "HANDLED /resume");
    assert_eq!(read_one(&mut waiting).text(), "/held");
    expect_line(&server, "HANDLED /held");
    // Pausing and resuming again works the same.
    control.write_all(get_ka("/pause").as_bytes()).unwrap();
    assert_eq!(read_one(&mut control).text(), "/pause");
    let mut second = connect(server.port);
    second.write_all(get_ka("/held2").as_bytes()).unwrap();
    assert_quiet(&mut second, "a new client while paused again");
    control.write_all(get_ka("/resume").as_bytes()).unwrap();
    assert_eq!(read_one(&mut control).text(), "/resume");
    assert_eq!(read_one(&mut second).text(), "/held2");
}

#[test]
fn close_frees_the_port_and_loop_returns_with_an_idle_client_still_connected() {
    let mut server = start("", CONTROL);
    let mut idle = connect(server.port);
    idle.write_all(get_ka("/idle").as_bytes()).unwrap();
    assert_eq!(read_one(&mut idle).text(), "/idle");
    expect_line(&server, "HANDLED /idle");
    let started = Instant::now();
    assert_eq!(get(server.port, "/close").text(), "/close");
    expect_line(&server, "HANDLED /close");
    // listen() after close() reports EBADF; localname() reports AF_UNSPEC.
    expect_line(&server, "CLOSED nil Bad file descriptor 9 | 0");
    expect_line(&server, "LOOP DONE");
    assert!(
        started.elapsed() < QUICK,
        "loop() returned only after {:?}",
        started.elapsed()
    );
    assert_refused(server.port);
    assert!(
        closed_within(&mut idle, WAIT),
        "the idle client was not let go"
    );
    assert_eq!(server.exit_code(), Some(0));
}

#[test]
fn close_from_a_handler_lets_its_response_finish_and_cuts_other_streams() {
    let mut server = start(
        "",
        r#"
        local path = assert(stream:get_headers()):get(":path")
        if path == "/stream" then
            local h = http_headers.new()
            h:append(":status", "200")
            assert(stream:write_headers(h, false))
            assert(stream:write_chunk("tick", false))
            while true do
                cqueues.sleep(0.05)
                local ok, err, errno = stream:write_chunk("tick", false)
                if not ok then
                    print("STREAM ENDED " .. show(ok, err, errno))
                    return
                end
            end
        end
        -- Close first, answer after: the answer still goes out whole.
        server:close()
        cqueues.sleep(0.1)
        respond(stream, 200, "bye")
        "#,
    );
    let mut streaming = connect(server.port);
    streaming.write_all(get_ka("/stream").as_bytes()).unwrap();
    read_until(&mut streaming, b"4\r\ntick\r\n");
    let started = Instant::now();
    assert_eq!(get(server.port, "/close").text(), "bye");
    expect_line(&server, "STREAM ENDED nil Broken pipe 32");
    expect_line(&server, "LOOP DONE");
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert!(closed_within(&mut streaming, WAIT));
    assert_refused(server.port);
    assert_eq!(server.exit_code(), Some(0));
}

#[test]
fn step_drives_the_server_and_empty_says_when_it_is_done() {
    let src = format!(
        "{PRELUDE}\n\
         local server = assert(http_server.listen {{ host = \"127.0.0.1\", port = 0, \
             onstream = function(server, stream) {CONTROL} end }})\n\
         print(\"EMPTY \" .. tostring(server:empty()))\n\
         local t0 = cqueues.monotime()\n\
         print(\"STEP \" .. show(server:step(0.2)))\n\
         local waited = cqueues.monotime() - t0\n\
         print(\"WAITED \" .. tostring(waited >= 0.15 and waited < 5))\n\
         print(\"LISTENING \" .. select(3, server:localname()))\n\
         local steps = 0\n\
         while not server:empty() do\n\
             assert(server:step(1))\n\
             steps = steps + 1\n\
         end\n\
         print(\"EMPTY \" .. tostring(server:empty()) .. \" \" .. tostring(steps > 0))\n"
    );
    let (mut server, before) = spawn_listening(&src, &[], &[]);
    assert_eq!(before, ["EMPTY false", "STEP true", "WAITED true"]);
    assert_eq!(get(server.port, "/a").text(), "/a");
    assert_eq!(get(server.port, "/close").text(), "/close");
    expect_line(&server, "HANDLED /a");
    expect_line(&server, "HANDLED /close");
    line_after(&server, "CLOSED ");
    expect_line(&server, "EMPTY true true");
    assert_eq!(server.exit_code(), Some(0));
}

#[test]
fn onerror_gets_and_sets_the_handler_that_handler_errors_reach() {
    let src = format!(
        "{PRELUDE}\n\
         local server = assert(http_server.listen {{ host = \"127.0.0.1\", port = 0, \
             onstream = function(server, stream)\n\
                 local path = assert(stream:get_headers()):get(\":path\")\n\
                 if path == \"/boom\" then error(\"boom at \" .. path) end\n\
                 respond(stream, 200, path)\n\
             end }})\n\
         local default = server:onerror()\n\
         print(\"DEFAULT \" .. type(default))\n\
         local function mine(s, context, op, err, errno)\n\
             print(\"ONERROR \" .. show(s == server, tostring(context):match(\"^http%.h1_stream\") ~= nil, \
                 op, tostring(err):match(\"boom at /boom$\") ~= nil, errno))\n\
         end\n\
         print(\"OLD \" .. tostring(server:onerror(mine) == default))\n\
         print(\"NOW \" .. tostring(server:onerror() == mine))\n\
         print(\"LISTENING \" .. select(3, server:localname()))\n\
         assert(server:loop())\n"
    );
    let (server, before) = spawn_listening(&src, &[], &[]);
    assert_eq!(before, ["DEFAULT function", "OLD true", "NOW true"]);
    // The handler failed before answering: the client gets 503, the error goes to `mine`.
    assert_eq!(get(server.port, "/boom").status, 503);
    expect_line(&server, "ONERROR true true onstream true nil");
    // The server goes on.
    assert_eq!(get(server.port, "/ok").text(), "/ok");
}

#[test]
fn the_default_onerror_makes_loop_return_false_with_the_message() {
    let src = format!(
        "{PRELUDE}\n\
         local server = assert(http_server.listen {{ host = \"127.0.0.1\", port = 0, \
             onstream = function(server, stream)\n\
                 local path = assert(stream:get_headers()):get(\":path\")\n\
                 if path == \"/boom\" then error(\"kaboom\") end\n\
                 respond(stream, 200, path)\n\
             end }})\n\
         print(\"LISTENING \" .. select(3, server:localname()))\n\
         local ok, err = server:loop()\n\
         print(\"LOOP \" .. show(ok, err))\n\
         assert(server:loop())\n"
    );
    let (mut server, _) = spawn_listening(&src, &[], &[]);
    assert_eq!(get(server.port, "/boom").status, 503);
    let line = line_after(&server, "LOOP ");
    assert!(
        line.starts_with("false ") && line.contains("onstream: ") && line.ends_with("kaboom"),
        "{line:?}"
    );
    // The server itself is intact: the next loop() serves again, until the next error, which
    // `assert` raises out of the script.
    assert_eq!(get(server.port, "/ok").text(), "/ok");
    assert_eq!(get(server.port, "/boom").status, 503);
    assert_eq!(server.exit_code(), Some(1));
    let stderr = server.stderr_when_closed();
    assert!(
        stderr.contains("onstream: ") && stderr.contains("kaboom"),
        "{stderr}"
    );
}

#[test]
fn polling_methods_report_nothing_to_poll_and_socket_injection_is_refused() {
    let src = format!(
        "{PRELUDE}\n\
         local server = assert(http_server.listen {{ host = \"127.0.0.1\", port = 0, \
             onstream = function(server, stream) {ECHO_PATH} end }})\n\
         print(\"POLL \" .. show(server:pollfd(), server:events(), server:timeout()))\n\
         print(\"ADD_SOCKET \" .. show(pcall(server.add_socket, server, {{}})))\n\
         print(\"ADD_STREAM \" .. show(pcall(server.add_stream, server, {{}})))\n\
         print(\"NAME \" .. tostring(server):match(\"^http%.server{{\"))\n\
         print(\"LISTENING \" .. select(3, server:localname()))\n\
         assert(server:loop())\n"
    );
    let (server, before) = spawn_listening(&src, &[], &[]);
    // ccserve's event loop is internal: there is no descriptor, no event mask and no timeout
    // to hand to another poll loop (drive the server with step() or loop() instead).
    assert_eq!(before[0], "POLL nil nil nil");
    assert!(
        before[1].starts_with("ADD_SOCKET false ") && before[1].contains("not supported"),
        "{}",
        before[1]
    );
    assert!(
        before[2].starts_with("ADD_STREAM false ") && before[2].contains("not supported"),
        "{}",
        before[2]
    );
    assert_eq!(before[3], "NAME http.server{");
    assert_eq!(get(server.port, "/x").text(), "/x");
}

// ---------------------------------------------------------------------------------------------
// Streams: request headers and bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn get_headers_gives_pseudo_headers_and_lower_cased_fields_in_order() {
    let server = start(
        "",
        r#"
        local h = assert(stream:get_headers())
        for name, value in h:each() do print("H " .. name .. "=" .. value) end
        print("DUP " .. h:get_as_sequence("x-dup").n .. " " .. h:get_comma_separated("x-dup"))
        print("HOST " .. tostring(h:has("host")))
        print("AGAIN " .. show(stream:get_headers()))
        print("END")
        respond(stream, 200, "ok")
        "#,
    );
    let resp = exchange(
        server.port,
        b"GET /p/a%20th?q=1&r HTTP/1.1\r\nHost: example.com:8080\r\nX-Dup: a\r\n\
          X-MiXed-Case: Value Kept\r\nx-dup: b\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.text(), "ok");
    let mut lines = Vec::new();
    loop {
        let line = server.next_line(WAIT).expect("a line");
        if line == "END" {
            break;
        }
        lines.push(line);
    }
    assert_eq!(
        lines,
        [
            "H :method=GET",
            "H :path=/p/a%20th?q=1&r",
            "H :scheme=http",
            "H :authority=example.com:8080",
            "H x-dup=a",
            "H x-mixed-case=Value Kept",
            "H x-dup=b",
            "H connection=close",
            "DUP 2 a,b",
            "HOST false",
            "AGAIN nil",
        ]
    );
}

/// Echoes `METHOD length:body` of the whole request body, read with `get_body_as_string`.
const BODY_ECHO: &str = r#"
    local h = assert(stream:get_headers())
    local body = assert(stream:get_body_as_string())
    respond(stream, 200, h:get(":method") .. " " .. #body .. ":" .. body)
"#;

#[test]
fn get_body_as_string_reads_content_length_and_chunked_bodies() {
    let server = start("", BODY_ECHO);
    let mut s = connect(server.port);
    s.write_all(b"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
        .unwrap();
    assert_eq!(read_one(&mut s).text(), "POST 11:hello world");
    s.write_all(
        b"PUT /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_one(&mut s).text(), "PUT 11:hello world");
    s.write_all(get_ka("/empty").as_bytes()).unwrap();
    assert_eq!(read_one(&mut s).text(), "GET 0:");
    // Binary bytes survive.
    let mut req = b"POST /bin HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n".to_vec();
    req.extend_from_slice(&[0, 255, 13, 10]);
    s.write_all(&req).unwrap();
    assert_eq!(read_one(&mut s).body, b"POST 4:\x00\xff\r\n");
}

#[test]
fn get_next_chunk_and_each_chunk_give_the_body_in_pieces_then_nil() {
    let server = start(
        "",
        r#"
        local path = assert(stream:get_headers()):get(":path")
        local parts = {}
        if path == "/next" then
            while true do
                local piece, err, errno = stream:get_next_chunk()
                if piece == nil then
                    assert(err == nil, err)
                    break
                end
                parts[#parts + 1] = piece
            end
        else
            for piece in stream:each_chunk() do parts[#parts + 1] = piece end
        end
        local after = show(stream:get_next_chunk())
        respond(stream, 200, table.concat(parts) .. "|" .. after)
        "#,
    );
    for path in ["/next", "/each"] {
        let mut s = connect(server.port);
        s.write_all(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        s.write_all(b"3\r\none\r\n").unwrap();
        s.write_all(b"3\r\ntwo\r\n").unwrap();
        s.write_all(b"5\r\nthree\r\n0\r\n\r\n").unwrap();
        assert_eq!(read_one(&mut s).text(), "onetwothree|nil", "{path}");
    }
}

#[test]
fn a_fifty_mebibyte_upload_is_read_piece_by_piece() {
    const SIZE: usize = 50 * 1024 * 1024;
    let server = start(
        "",
        r#"
        assert(stream:get_headers())
        local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        local total, pieces, largest, wrong = 0, 0, 0, 0
        while true do
            local piece, err, errno = stream:get_next_chunk()
            if piece == nil then
                assert(err == nil, err)
                break
            end
            -- Spot-check each piece's first and last byte against the pattern.
            local first = (total % 36) + 1
            local last = ((total + #piece - 1) % 36) + 1
            if piece:byte(1) ~= alphabet:byte(first) or piece:byte(-1) ~= alphabet:byte(last) then
                wrong = wrong + 1
            end
            total = total + #piece
            pieces = pieces + 1
            if #piece > largest then largest = #piece end
        end
        respond(stream, 200, show(total, pieces >= 800, largest <= 65536, wrong))
        "#,
    );
    let port = server.port;
    let mut s = connect(port);
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
            let block: Vec<u8> = (0..36 * 29127).map(|i| alphabet[i % 36]).collect();
            w.write_all(
                format!("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            let mut sent = 0;
            while sent < SIZE {
                let n = block.len().min(SIZE - sent);
                w.write_all(&block[..n]).unwrap();
                sent += n;
            }
        })
    };
    let resp = read_one(&mut s);
    writer.join().unwrap();
    assert_eq!(resp.text(), format!("{SIZE} true true 0"));
    // The body never sat in memory whole: the peak resident size stays far below 50 MiB.
    if !common::under_emulator(server.pid()) {
        let peak_kib = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0);
        assert!(peak_kib < 32 * 1024, "peak RSS {peak_kib} KiB");
    }
}

#[test]
fn get_body_chars_reads_up_to_n_bytes() {
    let server = start(
        "",
        r#"
        assert(stream:get_headers())
        local a = stream:get_body_chars(5)
        local b = stream:get_body_chars(1)
        local c = stream:get_body_chars(100)
        local d = stream:get_body_chars(1)
        respond(stream, 200, show(a, b, c, d))
        "#,
    );
    let resp = exchange(
        server.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\nhello world!!",
    );
    assert_eq!(resp.text(), "hello   world!! nil");
}

#[test]
fn get_body_until_finds_plain_and_pattern_delimiters_across_pieces() {
    let server = start(
        "",
        r#"
        assert(stream:get_headers())
        local u1 = stream:get_body_until("\r\n", true, false)
        local u2 = stream:get_body_until("\r\n", true, true)
        local u3 = stream:get_body_until("%d%d%d", false, true)
        local u4 = stream:get_body_until("%.", false, false)
        local u5 = stream:get_body_until("%d", false, false)
        local u6 = stream:get_body_until("x", true)
        respond(stream, 200, ("[%s][%s][%s][%s][%s][%s]"):format(
            tostring(u1), tostring(u2), tostring(u3), tostring(u4), tostring(u5), tostring(u6)))
        "#,
    );
    let mut s = connect(server.port);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    // Delimiters split across chunks.
    for piece in ["li", "ne1\r", "\nline2\r\nab", "c1", "23d.ef", "gh"] {
        s.write_all(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes())
            .unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    assert_eq!(
        read_one(&mut s).text(),
        "[line1][line2\r\n][abc123][d][efgh][nil]"
    );
}

#[test]
fn save_body_to_file_and_get_body_as_file() {
    let server = start(
        "",
        r#"
        local path = assert(stream:get_headers()):get(":path")
        local file, ok
        if path == "/save" then
            file = assert(io.tmpfile())
            ok = show(stream:save_body_to_file(file))
            assert(file:seek("set"))
        else
            file = assert(stream:get_body_as_file())
            ok = io.type(file) .. " " .. file:seek()
        end
        local data = file:read("*a")
        file:close()
        respond(stream, 200, ok .. "|" .. data)
        "#,
    );
    let body = "x".repeat(200_000) + "end";
    for (path, status) in [("/save", "true"), ("/asfile", "file 0")] {
        let resp = exchange(
            server.port,
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        assert_eq!(resp.text(), format!("{status}|{body}"), "{path}");
    }
}

#[test]
fn unget_puts_data_back_in_front_of_the_body() {
    let server = start(
        "",
        r#"
        assert(stream:get_headers())
        local first = assert(stream:get_next_chunk())
        local r1 = stream:unget(first)
        local r2 = stream:unget("hello ")
        local r3 = stream:unget("")
        local all = assert(stream:get_body_as_string())
        respond(stream, 200, show(r1, r2, r3) .. "|" .. all)
        "#,
    );
    let resp = exchange(
        server.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nworld",
    );
    assert_eq!(resp.text(), "true true true|hello world");
}

// ---------------------------------------------------------------------------------------------
// Streams: responses
// ---------------------------------------------------------------------------------------------

/// `/length` answers with a `content-length`, `/chunked` without, `/end` ends with the headers;
/// each writes its body (`abcde`) in two pieces, HEAD requests included.
const FRAMING: &str = r#"
    local h = assert(stream:get_headers())
    local path = h:get(":path")
    local out = http_headers.new()
    out:append(":status", "200")
    out:append("x-custom", "kept")
    if path == "/end" then
        assert(stream:write_headers(out, true))
        return
    end
    if path == "/length" then out:append("content-length", "5") end
    assert(stream:write_headers(out, false))
    assert(stream:write_chunk("ab", false))
    assert(stream:write_chunk("cde", true))
"#;

#[test]
fn write_headers_with_content_length_sends_a_fixed_length_body() {
    let server = start("", FRAMING);
    let mut s = connect(server.port);
    s.write_all(get_ka("/length").as_bytes()).unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
    assert_eq!(resp.header("content-length"), Some("5"));
    assert_eq!(resp.header("transfer-encoding"), None);
    assert_eq!(resp.header("x-custom"), Some("kept"));
    assert_eq!(resp.text(), "abcde");
    // `end_stream` on the headers: an empty body with `content-length: 0`.
    s.write_all(get_ka("/end").as_bytes()).unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.header("content-length"), Some("0"));
    assert_eq!(resp.text(), "");
    s.write_all(get_ka("/length").as_bytes()).unwrap();
    assert_eq!(read_one(&mut s).text(), "abcde");
}

#[test]
fn without_content_length_the_body_is_chunked_on_http_1_1_and_close_delimited_on_1_0() {
    let server = start("", FRAMING);
    let mut s = connect(server.port);
    s.write_all(get_ka("/chunked").as_bytes()).unwrap();
    let all = read_until(&mut s, b"0\r\n\r\n");
    let all = String::from_utf8_lossy(&all).into_owned();
    let (head, body) = all.split_once("\r\n\r\n").expect("a head");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert_eq!(body, "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n");
    // HTTP/1.0: no chunking; the body ends when the connection closes.
    let mut old = connect(server.port);
    old.write_all(b"GET /chunked HTTP/1.0\r\n\r\n").unwrap();
    let all = String::from_utf8_lossy(&read_to_close(&mut old)).into_owned();
    let (head, body) = all.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("connection: close"), "{head}");
    assert!(!lower.contains("content-length") && !lower.contains("transfer-encoding"));
    assert_eq!(body, "abcde");
}

#[test]
fn head_responses_carry_no_body_even_when_the_script_writes_one() {
    let server = start("", FRAMING);
    let mut s = connect(server.port);
    for path in ["/length", "/chunked", "/end"] {
        s.write_all(format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let resp = read_response(&mut s, true).expect("a response");
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.header("x-custom"), Some("kept"));
    }
    // Nothing of the bodies went out: the next response on the connection is read intact.
    s.write_all(get_ka("/length").as_bytes()).unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
    assert_eq!(resp.text(), "abcde");
}

/// `/go` signals `go`; `/read` waits for it, then reads the body; `/continue` sends
/// `write_continue()` first; `/ignore` answers without reading; `/stream` writes `one`, waits
/// for `/go`, then writes `two`.
const CONTINUE: &str = r#"
    local path = assert(stream:get_headers()):get(":path")
    if path == "/go" then
        go:signal()
        respond(stream, 200, "go")
    elseif path == "/read" then
        print("WAITING")
        go:wait()
        respond(stream, 200, "read:" .. assert(stream:get_body_as_string()))
    elseif path == "/continue" then
        print("CONTINUE " .. show(stream:write_continue()))
        respond(stream, 200, "continued:" .. assert(stream:get_body_as_string()))
    elseif path == "/ignore" then
        respond(stream, 200, "ignored")
    elseif path == "/stream" then
        local h = http_headers.new()
        h:append(":status", "200")
        assert(stream:write_headers(h, false))
        assert(stream:write_chunk("one", false))
        print("WROTE one")
        go:wait()
        assert(stream:write_chunk("two", true))
    end
"#;

fn continue_server() -> Server {
    Server::start(
        &script("", CONTINUE).replace(
            "local server = assert(",
            "local go = cc.new()\nlocal server = assert(",
        ),
        &[],
    )
}

const EXPECT: &str = "Host: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n";

#[test]
fn expect_100_continue_is_answered_only_when_the_script_reads_the_body() {
    let server = continue_server();
    let mut s = connect(server.port);
    s.write_all(format!("POST /read HTTP/1.1\r\n{EXPECT}").as_bytes())
        .unwrap();
    expect_line(&server, "WAITING");
    assert_quiet(&mut s, "before the script reads");
    assert_eq!(get(server.port, "/go").text(), "go");
    let interim = read_until(&mut s, b"\r\n\r\n");
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"body").unwrap();
    assert_eq!(read_one(&mut s).text(), "read:body");
}

#[test]
fn write_continue_sends_100_before_the_body_is_read() {
    let server = continue_server();
    let mut s = connect(server.port);
    s.write_all(format!("POST /continue HTTP/1.1\r\n{EXPECT}").as_bytes())
        .unwrap();
    let interim = read_until(&mut s, b"\r\n\r\n");
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    expect_line(&server, "CONTINUE true");
    s.write_all(b"abcd").unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.text(), "continued:abcd");
    // Exactly one 100 went out: the connection carries the next request cleanly.
    s.write_all(get_ka("/ignore").as_bytes()).unwrap();
    assert_eq!(read_one(&mut s).text(), "ignored");
}

#[test]
fn a_script_that_never_reads_answers_without_100_and_the_connection_closes() {
    let server = continue_server();
    let mut s = connect(server.port);
    s.write_all(format!("POST /ignore HTTP/1.1\r\n{EXPECT}").as_bytes())
        .unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "ignored");
    assert!(closed_within(&mut s, WAIT));
}

#[test]
fn write_chunk_sends_each_piece_as_it_is_written() {
    let server = continue_server();
    let mut s = connect(server.port);
    s.write_all(get_ka("/stream").as_bytes()).unwrap();
    let first = read_until(&mut s, b"3\r\none\r\n");
    assert!(first.starts_with(b"HTTP/1.1 200 OK\r\n"));
    expect_line(&server, "WROTE one");
    assert_quiet(&mut s, "before the second piece");
    assert_eq!(get(server.port, "/go").text(), "go");
    let rest = read_until(&mut s, b"0\r\n\r\n");
    assert_eq!(rest, b"3\r\ntwo\r\n0\r\n\r\n");
}

#[test]
fn write_body_from_string_and_from_file() {
    let server = start(
        "onerror = function(_, _, op, err) print(\"ONERROR \" .. op .. \" \" .. tostring(err)) end,",
        r#"
        local path = assert(stream:get_headers()):get(":path")
        local h = http_headers.new()
        h:append(":status", "200")
        if path == "/string" then
            assert(stream:write_headers(h, false))
            print("STRING " .. show(stream:write_body_from_string("whole body")))
            return
        end
        local file = assert(io.tmpfile())
        assert(file:write(("0123456789"):rep(10000)))
        if path == "/file" then
            assert(file:seek("set"))
            h:append("content-length", "100000")
            assert(stream:write_headers(h, false))
            print("FILE " .. show(stream:write_body_from_file(file)))
        elseif path == "/count" then
            assert(file:seek("set", 5))
            assert(stream:write_headers(h, false))
            print("COUNT " .. show(stream:write_body_from_file({ file = file, count = 10 })))
        elseif path == "/short" then
            assert(file:seek("set", 99990))
            assert(stream:write_headers(h, false))
            stream:write_body_from_file({ file = file, count = 100 })
        end
        "#,
    );
    assert_eq!(get(server.port, "/string").text(), "whole body");
    expect_line(&server, "STRING true");
    assert_eq!(
        get(server.port, "/file").text(),
        "0123456789".repeat(10_000)
    );
    expect_line(&server, "FILE true");
    assert_eq!(get(server.port, "/count").text(), "5678901234");
    expect_line(&server, "COUNT true");
    // A file that ends before `count` bytes is an error; the client sees the body cut off.
    let mut s = connect(server.port);
    s.write_all(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let all = read_to_close(&mut s);
    assert!(
        !all.ends_with(b"0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&all)
    );
    let line = line_after(&server, "ONERROR ");
    assert!(
        line.starts_with("onstream ") && line.contains("count"),
        "{line}"
    );
}

#[test]
fn write_headers_refuses_invalid_fields_and_unsupported_interim_statuses() {
    let server = start(
        "",
        r#"
        assert(stream:get_headers())
        local function try(name, value, status)
            local h = http_headers.new()
            h:append(":status", status or "200")
            if name then h:append(name, value) end
            local ok, err = pcall(stream.write_headers, stream, h, false)
            print("TRY " .. tostring(ok) .. " " .. tostring(err))
        end
        try("bad name", "x")
        try("x-ok", "line\r\nbreak")
        try(nil, nil, "103")
        try(nil, nil, "2000")
        respond(stream, 200, "still fine")
        "#,
    );
    assert_eq!(get(server.port, "/").text(), "still fine");
    for want in [
        "invalid header name",
        "contains CR, LF or NUL",
        "no interim responses",
        "three-digit",
    ] {
        let line = line_after(&server, "TRY ");
        assert!(
            line.starts_with("false ") && line.contains(want),
            "{line:?} should mention {want:?}"
        );
    }
}

/// Header values checked once are remembered, at most 256 at a time: after more distinct
/// values than that, every one still goes out, and a value with a line break is still refused.
#[test]
fn checked_header_values_are_remembered_within_a_bound() {
    let server = start(
        "onerror = function(_, _, op, err) print(\"ONERROR \" .. op .. \" \" .. tostring(err)) end,",
        r#"
        local path = assert(stream:get_headers()):get(":path")
        local value = path == "/bad" and "a\r\nInjected: 1" or "v" .. path:sub(2)
        respond(stream, 200, "ok", { ["x-echo"] = value })
        "#,
    );
    let mut s = common::connect(server.port);
    for i in 0..300 {
        s.write_all(get_ka(&format!("/{i}")).as_bytes()).unwrap();
        let r = read_one(&mut s);
        assert_eq!(
            r.header("x-echo"),
            Some(format!("v{i}").as_str()),
            "request {i}"
        );
    }
    s.write_all(get_ka("/bad").as_bytes()).unwrap();
    assert_eq!(read_one(&mut s).status, 503);
    let line = line_after(&server, "ONERROR ");
    assert!(line.contains("contains CR, LF or NUL"), "{line}");
}

#[test]
fn shutdown_cuts_an_unfinished_response_and_answers_503_before_any() {
    let server = start(
        "",
        r#"
        local path = assert(stream:get_headers()):get(":path")
        if path == "/cut" then
            local h = http_headers.new()
            h:append(":status", "200")
            assert(stream:write_headers(h, false))
            assert(stream:write_chunk("partial", false))
            print("SHUTDOWN " .. show(stream:shutdown()) .. " " .. stream.state)
            print("AFTER " .. show(stream:write_chunk("more", true)))
        else
            print("SHUTDOWN " .. show(stream:shutdown()) .. " " .. stream.state)
        end
        "#,
    );
    let mut s = connect(server.port);
    s.write_all(get_ka("/cut").as_bytes()).unwrap();
    let all = read_to_close(&mut s);
    let text = String::from_utf8_lossy(&all);
    assert!(text.ends_with("7\r\npartial\r\n"), "{text:?}");
    expect_line(&server, "SHUTDOWN true closed");
    expect_line(&server, "AFTER nil Broken pipe 32");
    assert_eq!(get(server.port, "/nothing").status, 503);
    expect_line(&server, "SHUTDOWN true closed");
}

// ---------------------------------------------------------------------------------------------
// Streams: addresses, connection, state
// ---------------------------------------------------------------------------------------------

#[test]
fn peername_localname_and_the_connection_object() {
    let server = Server::start(
        &script(
            "",
            r#"
            local h = assert(stream:get_headers())
            local path = h:get(":path")
            if path == "/gc" then
                -- Between two requests of the other connection, nothing in the script holds its
                -- connection object: collect everything collectable.
                collectgarbage()
                collectgarbage()
                return respond(stream, 200, "collected")
            end
            local conn = stream.connection
            seen[conn] = (seen[conn] or 0) + 1
            print("PEER " .. show(stream:peername()))
            print("LOCAL " .. show(stream:localname()))
            print(("CONN %.1f %s | %s | %d"):format(conn.version, show(conn:peername()),
                show(conn:localname()), seen[conn]))
            respond(stream, 200, path)
            "#,
        )
        .replace(
            "local server = assert(",
            "local seen = setmetatable({}, { __mode = \"k\" })\nlocal server = assert(",
        ),
        &[],
    );
    let mut s = connect(server.port);
    let me = s.local_addr().unwrap().port();
    let peer = format!("2 127.0.0.1 {me}");
    let local = format!("2 127.0.0.1 {}", server.port);
    for (i, path) in ["/1", "/2"].iter().enumerate() {
        s.write_all(get_ka(path).as_bytes()).unwrap();
        assert_eq!(read_one(&mut s).text(), *path);
        expect_line(&server, &format!("PEER {peer}"));
        expect_line(&server, &format!("LOCAL {local}"));
        // The same connection object for both requests of the keep-alive connection.
        expect_line(&server, &format!("CONN 1.1 {peer} | {local} | {}", i + 1));
        assert_eq!(get(server.port, "/gc").text(), "collected");
    }
    // Another connection has its own object; an HTTP/1.0 client's connection says 1.1 too
    // (as lua-http's does: the request's own version is the stream's `peer_version`).
    let mut other = connect(server.port);
    let other_peer = format!("2 127.0.0.1 {}", other.local_addr().unwrap().port());
    other.write_all(b"GET /3 HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut other).text(), "/3");
    line_after(&server, "PEER ");
    line_after(&server, "LOCAL ");
    expect_line(&server, &format!("CONN 1.1 {other_peer} | {local} | 1"));
}

#[test]
fn state_follows_the_request_and_the_response() {
    let server = start(
        "",
        r#"
        local states = { stream.state }
        local h = assert(stream:get_headers())
        states[#states + 1] = stream.state
        local path = h:get(":path")
        local out = http_headers.new()
        out:append(":status", "200")
        if path == "/respond-first" then
            assert(stream:write_headers(out, false))
            states[#states + 1] = stream.state
            assert(stream:write_chunk("x", true))
            states[#states + 1] = stream.state
            assert(stream:get_body_as_string())
            states[#states + 1] = stream.state
        else
            assert(stream:get_body_as_string())
            states[#states + 1] = stream.state
            assert(stream:write_headers(out, false))
            states[#states + 1] = stream.state
            assert(stream:write_chunk("x", true))
            states[#states + 1] = stream.state
        end
        print("STATES " .. table.concat(states, ","))
        "#,
    );
    get(server.port, "/get");
    expect_line(
        &server,
        "STATES half closed (remote),half closed (remote),half closed (remote),half closed (remote),\
         closed",
    );
    exchange(
        server.port,
        b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    );
    expect_line(
        &server,
        "STATES open,open,half closed (remote),half closed (remote),closed",
    );
    exchange(
        server.port,
        b"POST /respond-first HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    );
    expect_line(&server, "STATES open,open,open,half closed (local),closed");
}

// ---------------------------------------------------------------------------------------------
// Handlers: automatic answers, errors, vanished clients, ordering, concurrency
// ---------------------------------------------------------------------------------------------

#[test]
fn a_handler_that_returns_without_responding_gets_an_automatic_503() {
    let server = start(
        "",
        r#"
        local path = assert(stream:get_headers()):get(":path")
        if path == "/half" then
            local h = http_headers.new()
            h:append(":status", "200")
            assert(stream:write_headers(h, false))
            assert(stream:write_chunk("half", false))
        end
        "#,
    );
    let mut s = connect(server.port);
    s.write_all(get_ka("/none").as_bytes()).unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.status, 503);
    // A response left unfinished is cut off (the client sees it incomplete).
    s.write_all(get_ka("/half").as_bytes()).unwrap();
    let all = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
    assert!(all.ends_with("4\r\nhalf\r\n"), "{all:?}");
}

#[test]
fn writing_to_a_client_that_vanished_fails_with_epipe_and_the_server_goes_on() {
    let server = start(
        "",
        r#"
        local path = assert(stream:get_headers()):get(":path")
        if path == "/forever" then
            local h = http_headers.new()
            h:append(":status", "200")
            assert(stream:write_headers(h, false))
            local piece = ("x"):rep(16384)
            while true do
                local ok, err, errno = stream:write_chunk(piece, false)
                if not ok then
                    print("FAILED " .. show(ok, err, errno))
                    return
                end
                cqueues.sleep(0.001)
            end
        end
        respond(stream, 200, path)
        "#,
    );
    let mut s = connect(server.port);
    s.write_all(get_ka("/forever").as_bytes()).unwrap();
    read_until(&mut s, b"4000\r\nxxxx");
    drop(s);
    expect_line(&server, "FAILED nil Broken pipe 32");
    assert_eq!(get(server.port, "/after").text(), "/after");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = start(
        "",
        r#"
        local path = assert(stream:get_headers()):get(":path")
        if path == "/slow" then cqueues.sleep(0.3) end
        local body = assert(stream:get_body_as_string())
        respond(stream, 200, path .. ":" .. body)
        "#,
    );
    let mut s = connect(server.port);
    s.write_all(
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nbbb\
          GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let bodies: Vec<String> = (0..3).map(|_| read_one(&mut s).text()).collect();
    assert_eq!(bodies, ["/slow:", "/b:bbb", "/c:"]);
    assert!(closed_within(&mut s, WAIT));
}

#[test]
fn cqueues_sleep_in_one_handler_does_not_delay_another_client() {
    let server = start(
        "",
        r#"
        local path = assert(stream:get_headers()):get(":path")
        if path == "/slow" then
            print("SLEEPING")
            local t0 = cqueues.monotime()
            cqueues.sleep(6)
            respond(stream, 200, "slept " .. tostring(cqueues.monotime() - t0 >= 5.9))
        else
            respond(stream, 200, "fast")
        end
        "#,
    );
    let mut slow = connect(server.port);
    slow.write_all(get_ka("/slow").as_bytes()).unwrap();
    expect_line(&server, "SLEEPING");
    let started = Instant::now();
    assert_eq!(get(server.port, "/fast").text(), "fast");
    // Well inside the other handler's 6 s sleep, with room for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_quiet(&mut slow, "the sleeping handler");
    assert_eq!(read_one(&mut slow).text(), "slept true");
}

#[test]
fn craftos_events_and_globals_work_beside_a_lua_http_server() {
    let src = format!(
        "{PRELUDE}\n\
         local server = assert(http_server.listen {{ host = \"127.0.0.1\", port = 0, \
             onstream = function(server, stream)\n\
                 local path = assert(stream:get_headers()):get(\":path\")\n\
                 if path == \"/quit\" then\n\
                     os.queueEvent(\"quit\", \"now\")\n\
                     respond(stream, 200, \"bye\")\n\
                     return\n\
                 end\n\
                 os.queueEvent(\"mine\", path)\n\
                 local event, value = os.pullEvent(\"mine\")\n\
                 sleep(0.05)\n\
                 local timer = os.startTimer(0.05)\n\
                 repeat local _, id = os.pullEvent(\"timer\") until id == timer\n\
                 respond(stream, 200, event .. \" \" .. textutils.serialize(value))\n\
             end }})\n\
         -- Events before the server runs are seen as usual.\n\
         os.queueEvent(\"before\", 1)\n\
         print(\"BEFORE \" .. show(os.pullEvent(\"before\")))\n\
         print(\"LISTENING \" .. select(3, server:localname()))\n\
         parallel.waitForAny(\n\
             function() assert(server:loop()) end,\n\
             function() print(\"QUIT \" .. select(2, os.pullEvent(\"quit\"))) end)\n\
         print(\"AFTER PARALLEL \" .. os.getComputerID())\n"
    );
    let (mut server, before) = spawn_listening(&src, &[], &[]);
    assert_eq!(before, ["BEFORE before 1"]);
    assert_eq!(get(server.port, "/hello").text(), r#"mine "/hello""#);
    assert_eq!(get(server.port, "/quit").text(), "bye");
    expect_line(&server, "QUIT now");
    expect_line(&server, "AFTER PARALLEL 0");
    assert_eq!(server.exit_code(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// Timeouts of stream methods
// ---------------------------------------------------------------------------------------------

#[test]
fn body_reads_time_out_with_nil_message_errno() {
    let server = start(
        "",
        r#"
        assert(stream:get_headers())
        local first = assert(stream:get_next_chunk(5))
        local t0 = cqueues.monotime()
        print("NEXT " .. show(stream:get_next_chunk(0.3)))
        print("STRING " .. show(stream:get_body_as_string(0.2)))
        print("CHARS " .. show(stream:get_body_chars(100, 0.2)))
        print("UNTIL " .. show(stream:get_body_until("z", true, false, 0.2)))
        print("TOOK " .. tostring(cqueues.monotime() - t0 >= 0.8))
        local rest = assert(stream:get_body_as_string())
        respond(stream, 200, first .. "+" .. rest)
        "#,
    );
    let mut s = connect(server.port);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let timeout = "nil Connection timed out 110";
    expect_line(&server, &format!("NEXT {timeout}"));
    expect_line(&server, &format!("STRING {timeout}"));
    expect_line(&server, &format!("CHARS {timeout}"));
    expect_line(&server, &format!("UNTIL {timeout}"));
    expect_line(&server, "TOOK true");
    s.write_all(b"defghij").unwrap();
    assert_eq!(read_one(&mut s).text(), "abc+defghij");
}

#[test]
fn write_chunk_times_out_when_the_client_reads_nothing() {
    let server = Server::start(
        &script(
            "",
            r#"
            local path = assert(stream:get_headers()):get(":path")
            if path ~= "/flood" then return respond(stream, 200, path) end
            local h = http_headers.new()
            h:append(":status", "200")
            assert(stream:write_headers(h, false))
            local piece, total = ("y"):rep(65536), 0
            while true do
                local ok, err, errno = stream:write_chunk(piece, false, 0.5)
                if not ok then
                    print("WRITE " .. show(ok, err, errno))
                    break
                end
                total = total + #piece
                if total > 512 * 1024 * 1024 then print("NEVER BLOCKED") break end
            end
            "#,
        ),
        &["--stream-buffer", "65536"],
    );
    let mut s = connect(server.port);
    s.write_all(get_ka("/flood").as_bytes()).unwrap();
    expect_line(&server, "WRITE nil Connection timed out 110");
    drop(s);
    assert_eq!(get(server.port, "/after").text(), "/after");
}

// ---------------------------------------------------------------------------------------------
// What ccserve guarantees every API
// ---------------------------------------------------------------------------------------------

/// Prints `STREAM <path>` for every request that reaches the script.
const TRACE: &str = r#"
    local path = assert(stream:get_headers()):get(":path")
    print("STREAM " .. path)
    respond(stream, 200, path)
"#;

#[test]
fn malformed_requests_get_400_without_reaching_the_script() {
    let server = start("", TRACE);
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut s = connect(server.port);
        s.write_all(bad).unwrap();
        let resp = read_one(&mut s);
        if bad.starts_with(b"POST") {
            // The head was fine: the script sees it, and a body read fails.
            continue;
        }
        assert_eq!(resp.status, 400, "{:?}", String::from_utf8_lossy(bad));
        assert!(closed_within(&mut s, WAIT));
    }
    assert_eq!(get(server.port, "/ok").text(), "/ok");
    let mut streams = Vec::new();
    loop {
        let line = server.next_line(WAIT).expect("a line");
        let done = line == "STREAM /ok";
        streams.push(line);
        if done {
            break;
        }
    }
    assert_eq!(streams, ["STREAM /", "STREAM /ok"]);
}

#[test]
fn a_client_stalling_mid_head_gets_408_and_others_are_served() {
    let server = Server::start(&script("", TRACE), &["--header-timeout", "1"]);
    let mut stalled = connect(server.port);
    stalled
        .write_all(b"GET /stalled HTTP/1.1\r\nHost:")
        .unwrap();
    assert_eq!(get(server.port, "/meanwhile").text(), "/meanwhile");
    assert_eq!(read_one(&mut stalled).status, 408);
    assert!(closed_within(&mut stalled, WAIT));
    expect_line(&server, "STREAM /meanwhile");
    assert_eq!(get(server.port, "/after").text(), "/after");
    expect_line(&server, "STREAM /after");
}

#[test]
fn an_oversized_head_gets_431() {
    let server = start("", TRACE);
    let mut s = connect(server.port);
    let big = format!(
        "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let _ = s.write_all(big.as_bytes());
    assert_eq!(read_one(&mut s).status, 431);
    assert_eq!(get(server.port, "/after").text(), "/after");
    expect_line(&server, "STREAM /after");
}

#[test]
fn a_client_vanishing_mid_response_does_not_stop_the_server() {
    let server = start(
        "",
        r#"
        local path = assert(stream:get_headers()):get(":path")
        local h = http_headers.new()
        h:append(":status", "200")
        h:append("content-length", tostring(8 * 1024 * 1024))
        assert(stream:write_headers(h, false))
        local piece = ("z"):rep(1024 * 1024)
        for i = 1, 8 do
            if not stream:write_chunk(piece, i == 8) then break end
        end
        print("DONE " .. path)
        "#,
    );
    for i in 0..5 {
        let mut s = connect(server.port);
        s.write_all(get_ka(&format!("/gone{i}")).as_bytes())
            .unwrap();
        read_until(&mut s, b"zzzz");
        drop(s);
        expect_line(&server, &format!("DONE /gone{i}"));
    }
    let mut s = connect(server.port);
    s.write_all(get_ka("/whole").as_bytes()).unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.body.len(), 8 * 1024 * 1024);
}

// ---------------------------------------------------------------------------------------------
// Behaviours that need a change in the engine (src/http/): kept as reproductions
// ---------------------------------------------------------------------------------------------

#[test]
fn reading_the_body_after_writing_the_head_sends_no_late_100_continue() {
    let server = start(
        "",
        r#"
        assert(stream:get_headers())
        local h = http_headers.new()
        h:append(":status", "200")
        assert(stream:write_headers(h, false))
        for piece in stream:each_chunk() do assert(stream:write_chunk(piece, false)) end
        assert(stream:write_chunk("", true))
        "#,
    );
    let mut s = connect(server.port);
    s.write_all(format!("POST /echo HTTP/1.1\r\n{EXPECT}").as_bytes())
        .unwrap();
    // The final head is out before the body is read; the client may send the body anyway.
    read_until(&mut s, b"\r\n\r\n");
    s.write_all(b"body").unwrap();
    let rest = String::from_utf8_lossy(&read_until(&mut s, b"0\r\n\r\n")).into_owned();
    assert_eq!(rest, "4\r\nbody\r\n0\r\n\r\n");
}

#[test]
fn a_handler_slower_than_the_response_timeout_still_answers() {
    let server = Server::start(
        &script(
            "",
            r#"
            local path = assert(stream:get_headers()):get(":path")
            if path == "/stream" then
                local h = http_headers.new()
                h:append(":status", "200")
                assert(stream:write_headers(h, false))
                assert(stream:write_chunk("one", false))
                cqueues.sleep(2)
                assert(stream:write_chunk("two", true))
                return
            end
            cqueues.sleep(2)
            respond(stream, 200, "late")
            "#,
        ),
        &["--response-timeout", "1"],
    );
    assert_eq!(get(server.port, "/slow").text(), "late");
    let mut s = connect(server.port);
    s.write_all(get_ka("/stream").as_bytes()).unwrap();
    read_until(&mut s, b"3\r\ntwo\r\n0\r\n\r\n");
}

// ---------------------------------------------------------------------------------------------
// UNIX domain sockets (`path`)
// ---------------------------------------------------------------------------------------------

/// A fresh socket path under the test tmpdir.
fn socket_path(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}.sock", std::process::id()))
}

/// A connection to the UNIX socket at `path`, in the type the response reader takes (a UNIX
/// stream socket does everything it asks of one).
fn unix_connect(path: &std::path::Path) -> TcpStream {
    let s = std::os::unix::net::UnixStream::connect(path).expect("connect to the UNIX socket");
    s.set_read_timeout(Some(WAIT)).unwrap();
    TcpStream::from(std::os::fd::OwnedFd::from(s))
}

/// An echo server on the UNIX socket `path` (its `listen` options in `options`), printing its
/// `localname` and, after trying the same path again without `unlink`, what that returned.
fn unix_echo_script(path: &std::path::Path, options: &str) -> String {
    format!(
        "{PRELUDE}\n\
         local server = assert(http_server.listen {{ path = {path:?}, {options}\n\
           onstream = function(server, stream)\n\
             local h = assert(stream:get_headers())\n\
             local body = assert(stream:get_body_as_string())\n\
             print(\"PEER \" .. table.concat({{ stream:peername() }}, \" \"))\n\
             respond(stream, 200, h:get(\":method\") .. \" \" .. h:get(\":path\") .. \"|\" .. body)\n\
             if h:get(\":path\") == \"/close\" then server:close() end\n\
           end }})\n\
         print(\"LOCAL \" .. table.concat({{ server:localname() }}, \" \"))\n\
         print(\"AGAIN \" .. show(http_server.listen {{ path = {path:?}, onstream = print }}))\n\
         print(\"LISTENING 0\")\n\
         assert(server:loop())\n\
         print(\"LOOP ENDED\")\n",
        path = path.to_str().expect("a UTF-8 path"),
    )
}

#[test]
fn a_unix_socket_server_answers_on_its_path_with_its_mode() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let path = socket_path("mode");
    // A stale file where the socket goes: `unlink = true` replaces it.
    std::fs::write(&path, b"stale").unwrap();
    let (server, before) = spawn_listening(
        &unix_echo_script(&path, "unlink = true, mode = \"0600\","),
        &[],
        &[],
    );
    assert_eq!(before[0], format!("LOCAL 1 {}", path.display()));
    // The same path again, without `unlink`: refused, as lua-http refuses it.
    assert!(
        before[1].starts_with("AGAIN nil Address already in use") && before[1].ends_with(" 98"),
        "{}",
        before[1]
    );
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket(), "{:?}", meta.file_type());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // curl over the socket.
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--unix-socket"])
        .arg(&path)
        .args(["-d", "from curl", "http://localhost/curl"])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "POST /curl|from curl");
    // A UNIX client has no address ccserve reports: AF_UNSPEC, as README says.
    assert_eq!(
        server.line_starting("PEER", WAIT).as_deref(),
        Some("PEER 0")
    );

    // Several requests on one connection, bodies and keep-alive as over TCP.
    let mut s = unix_connect(&path);
    for i in 0..5 {
        let req = if i % 2 == 0 {
            format!("GET /k{i} HTTP/1.1\r\nHost: x\r\n\r\n")
        } else {
            format!("PUT /k{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nb{i}!")
        };
        s.write_all(req.as_bytes()).unwrap();
        let resp = read_response(&mut s, false).expect("a response");
        let want = if i % 2 == 0 {
            format!("GET /k{i}|")
        } else {
            format!("PUT /k{i}|b{i}!")
        };
        assert_eq!(resp.text(), want);
    }
    drop(server);
}

#[test]
fn closing_a_unix_socket_server_stops_it() {
    let path = socket_path("close");
    let (mut server, _) = spawn_listening(&unix_echo_script(&path, "unlink = true,"), &[], &[]);
    let mut s = unix_connect(&path);
    s.write_all(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut s, false).expect("a response").text(),
        "GET /close|"
    );
    server
        .line_starting("LOOP ENDED", WAIT)
        .expect("the loop ends");
    assert_eq!(server.wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    let refused = std::os::unix::net::UnixStream::connect(&path).expect_err("nobody listens");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
}
