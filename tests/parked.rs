//! Keep-alive connections parked with the Lua thread between requests (`src/http/lane.rs`,
//! `src/poller.rs`): the Lua thread reads a small request itself, and hands everything else back
//! to the connection thread. Every test here drives the requests *after* the first on a
//! connection, where parking happens, through one of those paths, against the real binary over
//! real TCP on 127.0.0.1.
//!
//! Nothing sleeps to synchronise: tests wait on responses, lines of output or a closed socket,
//! always with a bound.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{
    closed_within, connect, read_response, read_until, threads_of, Response, Server, WAIT,
};

/// Echoes method, target and body: `GET /x|` or `POST /x|body`.
const ECHO: &str =
    "res.write(req.getMethod() .. ' ' .. req.getURL() .. '|' .. req.readAll())\nres.close()";

fn echo_server(extra: &[&str]) -> Server {
    Server::start(&common::listen_script(ECHO), extra)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
}

fn read_one(stream: &mut TcpStream) -> Response {
    read_response(stream, false).expect("a response before the connection closed")
}

/// Sends `request` and returns the text of the response.
fn ask(stream: &mut TcpStream, request: impl AsRef<[u8]>) -> String {
    stream.write_all(request.as_ref()).unwrap();
    read_one(stream).text()
}

/// A keep-alive connection that has had one request answered (so it is parked now).
fn parked_connection(port: u16) -> TcpStream {
    let mut s = connect(port);
    s.write_all(get("/first").as_bytes()).unwrap();
    let first = read_one(&mut s);
    assert_eq!(first.status, 200, "{}", first.status_line);
    assert_eq!(first.header("connection"), Some("keep-alive"));
    s
}

/// The voluntary context switches of the one thread named `name` in process `pid`.
fn voluntary_switches(pid: u32, name: &str) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut found = None;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        assert!(found.is_none(), "more than one thread named {name}");
        let status = std::fs::read_to_string(task.path().join("status")).ok()?;
        found = status
            .lines()
            .find(|l| l.starts_with("voluntary_ctxt_switches:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
    }
    found
}

/// Asserts the thread named `name` woke fewer than `n / 10` times since it had made `before`
/// voluntary context switches, while `n` requests or messages were served. qemu-user (the ARM
/// suites) reports its own threads' switches, so the count is only checked natively.
fn assert_slept_through(server: &Server, name: &str, before: Option<u64>, n: usize) {
    if common::under_emulator(server.pid()) {
        return;
    }
    let (Some(before), Some(after)) = (before, voluntary_switches(server.pid(), name)) else {
        panic!("no thread named {name} found in /proc");
    };
    assert!(
        after - before < (n / 10) as u64,
        "{name} woke {} times for {n} requests or messages",
        after - before
    );
}

#[test]
fn many_requests_on_one_connection_are_answered_in_order_while_its_thread_sleeps() {
    let server = echo_server(&[]);
    let mut s = parked_connection(server.port);
    let before = voluntary_switches(server.pid(), "ccserve-conn");
    const N: usize = 300;
    for i in 0..N {
        assert_eq!(
            ask(&mut s, get(&format!("/n/{i}")).as_bytes()),
            format!("GET /n/{i}|")
        );
    }
    // The connection thread read the first request; the Lua thread read the others itself, so
    // that thread slept through them instead of waking for each (the point of parking).
    assert_slept_through(&server, "ccserve-conn", before, N);
}

#[test]
fn a_head_split_across_writes_is_read_whole() {
    let server = echo_server(&[]);
    let mut s = parked_connection(server.port);
    s.write_all(b"GET /split HTTP/1.1\r\nHo").unwrap();
    // No answer to half a head (and time for the server to read the half it has).
    common::assert_quiet_for(&mut s, Duration::from_millis(200), "half a head");
    assert_eq!(ask(&mut s, b"st: 127.0.0.1\r\n\r\n"), "GET /split|");
    // The connection goes on, and parks again.
    assert_eq!(ask(&mut s, get("/after").as_bytes()), "GET /after|");
}

#[test]
fn requests_with_bodies_are_read_by_the_connection_thread() {
    let server = echo_server(&[]);
    let mut s = parked_connection(server.port);
    assert_eq!(
        ask(
            &mut s,
            b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        ),
        "POST /len|hello"
    );
    assert_eq!(ask(&mut s, b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",), "POST /chunked|abc");
    // The body of a request with `Expect: 100-continue` follows the interim response.
    s.write_all(
        b"POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let interim = read_one(&mut s);
    assert_eq!(interim.status, 100, "{}", interim.status_line);
    assert_eq!(ask(&mut s, b"xyz"), "POST /expect|xyz");
    assert_eq!(ask(&mut s, get("/last").as_bytes()), "GET /last|");
}

#[test]
fn pipelined_requests_arriving_together_are_answered_in_order() {
    let server = echo_server(&[]);
    let mut s = parked_connection(server.port);
    let batch = format!(
        "{}{}POST /p3 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok{}",
        get("/p1"),
        get("/p2"),
        get("/p4")
    );
    s.write_all(batch.as_bytes()).unwrap();
    for want in ["GET /p1|", "GET /p2|", "POST /p3|ok", "GET /p4|"] {
        assert_eq!(read_one(&mut s).text(), want);
    }
}

#[test]
fn head_requests_and_connection_close_are_honoured() {
    let server = echo_server(&[]);
    let mut s = parked_connection(server.port);
    s.write_all(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = read_response(&mut s, true).expect("a HEAD response");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some("8"),
        "HEAD /h| is 8 bytes"
    );
    // No body followed the HEAD response: the next response starts right after it.
    s.write_all(b"GET /close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let last = read_one(&mut s);
    assert_eq!(last.text(), "GET /close|");
    assert_eq!(last.header("connection"), Some("close"));
    assert!(closed_within(&mut s, WAIT), "connection left open");
}

#[test]
fn an_http_1_0_request_without_keep_alive_is_answered_and_closed() {
    let server = echo_server(&[]);
    let mut s = parked_connection(server.port);
    s.write_all(b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.status_line, "HTTP/1.0 200 OK");
    assert_eq!(resp.text(), "GET /old|");
    assert!(closed_within(&mut s, WAIT), "connection left open");
}

#[test]
fn a_response_finished_later_by_the_script_reaches_the_client() {
    // The handler answers /later from a timer, after the event that delivered the request: the
    // connection thread takes the exchange over from the Lua thread.
    let script = "local port = http.addListener(0)\n\
        print('LISTENING ' .. port)\n\
        local waiting = {}\n\
        while true do\n\
          local ev, a, b, c = os.pullEvent()\n\
          if ev == 'http_request' then a, b = b, c end\n\
          if ev == 'http_request' then\n\
            if a.getURL() == '/later' then\n\
              waiting[os.startTimer(0.05)] = b\n\
            else\n\
              b.write('now ' .. a.getURL()) b.close()\n\
            end\n\
          elseif ev == 'timer' and waiting[a] then\n\
            waiting[a].write('later') waiting[a].close() waiting[a] = nil\n\
          end\n\
        end\n";
    let server = Server::start(script, &["--response-timeout", "60"]);
    let mut s = connect(server.port);
    for round in 0..3 {
        assert_eq!(
            ask(&mut s, get("/now").as_bytes()),
            "now /now",
            "round {round}"
        );
        assert_eq!(
            ask(&mut s, get("/later").as_bytes()),
            "later",
            "round {round}"
        );
    }
}

#[test]
fn large_responses_to_parked_requests_arrive_whole_through_a_small_window() {
    // Sizes around the Lua thread's direct-write limit (64 KiB): written whole by it, started by
    // it and finished by the connection thread (the client's receive window is 4 KiB and it reads
    // only after the response is written), or left to the connection thread.
    let server = Server::start(
        &common::listen_script(
            "local n = tonumber(req.getURL():match('%d+'))\n\
             res.write(string.rep(string.char(65 + n % 26), n))\n\
             res.close()",
        ),
        &[],
    );
    let mut s = common::connect_with_small_window(server.port, 4096);
    for n in [10usize, 3000, 60_000, 65_536, 70_000, 1_000_000, 20] {
        s.write_all(get(&format!("/{n}")).as_bytes()).unwrap();
        let resp = read_one(&mut s);
        assert_eq!(resp.body.len(), n, "size {n}");
        let want = b'A' + (n % 26) as u8;
        assert!(
            resp.body.iter().all(|&b| b == want),
            "size {n}: wrong bytes"
        );
    }
}

#[test]
fn a_streamed_response_to_a_parked_request_arrives_in_order() {
    let server = Server::start(
        &common::listen_script(
            "for i = 1, 5 do res.write('part' .. i .. ';') assert(res.flush()) end\n\
             res.close()",
        ),
        &[],
    );
    let mut s = connect(server.port);
    for round in 0..3 {
        s.write_all(get(&format!("/{round}")).as_bytes()).unwrap();
        let resp = read_one(&mut s);
        assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
        assert_eq!(
            resp.text(),
            "part1;part2;part3;part4;part5;",
            "round {round}"
        );
    }
}

#[test]
fn a_client_closing_a_parked_connection_ends_its_thread() {
    let server = echo_server(&[]);
    let idle = threads_of(server.pid());
    let mut clients: Vec<TcpStream> = (0..8).map(|_| parked_connection(server.port)).collect();
    for s in &mut clients {
        // A second request, so the connection is parked by the Lua thread too.
        s.write_all(get("/again").as_bytes()).unwrap();
        assert_eq!(read_one(s).text(), "GET /again|");
    }
    assert!(threads_of(server.pid()) >= idle + 8);
    drop(clients);
    let left = common::settles_to(idle, || threads_of(server.pid()));
    assert!(
        left <= idle,
        "{left} threads left, {idle} before the clients came"
    );
}

#[test]
fn the_script_ending_while_connections_are_parked_exits_at_once() {
    // The script serves two requests and ends; the client keeps its connection open, parked,
    // with a keep-alive timeout far longer than the test.
    let script = "local port = http.addListener(0)\n\
        print('LISTENING ' .. port)\n\
        for i = 1, 2 do\n\
          local _, _, req, res = os.pullEvent('http_request')\n\
          res.write('n' .. i) res.close()\n\
        end\n\
        print('DONE')\n";
    let mut server = Server::start(script, &["--keep-alive-timeout", "600"]);
    let mut s = connect(server.port);
    for i in 1..=2 {
        assert_eq!(ask(&mut s, get("/").as_bytes()), format!("n{i}"));
    }
    server.expect_line("DONE");
    let status = server.wait_exit(WAIT).expect("the process exits");
    assert!(status.success(), "{status:?}");
    assert!(closed_within(&mut s, WAIT), "connection left open");
}

#[test]
fn a_request_waiting_for_a_busy_script_is_answered_by_the_response_timeout() {
    // /busy keeps the Lua thread from yielding for 8 s. A request arriving meanwhile on a parked
    // connection cannot be read by the Lua thread, so its connection thread takes it back, and it
    // gets its 503 from the response timeout (1 s), as a request read by that thread at once
    // would. Read by the Lua thread after the 8 s instead, it would be answered `ok`.
    let server = Server::start(
        &common::listen_script(
            "if req.getURL() == '/busy' then\n\
               print('BUSY')\n\
               local t = os.epoch('utc') while os.epoch('utc') - t < 8000 do end\n\
               return\n\
             end\n\
             res.write('ok') res.close()",
        ),
        &["--response-timeout", "1", "--keep-alive-timeout", "60"],
    );
    let mut parked = parked_connection(server.port);
    let mut busy = connect(server.port);
    busy.write_all(get("/busy").as_bytes()).unwrap();
    server.expect_line("BUSY");
    let sent = Instant::now();
    parked.write_all(get("/waiting").as_bytes()).unwrap();
    let resp = read_one(&mut parked);
    assert_eq!(
        resp.status,
        503,
        "{} after {:?}",
        resp.status_line,
        sent.elapsed()
    );
    // /busy itself got what it had buffered (nothing) at its own response timeout.
    assert_eq!(read_one(&mut busy).text(), "");
}

#[test]
fn a_websocket_upgrade_after_plain_requests_takes_the_connection_over() {
    let source = "local http_server = require 'http.server'\n\
        local http_headers = require 'http.headers'\n\
        local http_websocket = require 'http.websocket'\n\
        local server = assert(http_server.listen { host = '127.0.0.1', port = 0,\n\
          onstream = function(_, stream)\n\
            local req = assert(stream:get_headers())\n\
            if req:get(':path') == '/ws' then\n\
              local ws = assert(http_websocket.new_from_stream(stream, req))\n\
              assert(ws:accept())\n\
              for data, kind in ws:each() do assert(ws:send(data, kind)) end\n\
            else\n\
              local body = stream:get_body_as_string()\n\
              local res = http_headers.new()\n\
              res:append(':status', '200')\n\
              assert(stream:write_headers(res, false))\n\
              assert(stream:write_chunk(req:get(':path') .. '|' .. body, true))\n\
            end\n\
          end })\n\
        assert(server:listen())\n\
        print('LISTENING ' .. select(3, server:localname()))\n\
        assert(server:loop())\n";
    let server = Server::start(source, &[]);
    let mut s = connect(server.port);
    assert_eq!(ask(&mut s, get("/plain").as_bytes()), "/plain|");
    assert_eq!(
        ask(
            &mut s,
            b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd"
        ),
        "/body|abcd"
    );
    assert_eq!(ask(&mut s, get("/again").as_bytes()), "/again|");
    // The same connection, parked, now asks for a protocol switch.
    use tungstenite::client::IntoClientRequest;
    let request = format!("ws://127.0.0.1:{}/ws", server.port)
        .into_client_request()
        .unwrap();
    let (mut ws, _) = tungstenite::client::client(request, s).expect("handshake");
    for i in 0..20 {
        ws.send(tungstenite::Message::text(format!("m{i}")))
            .unwrap();
        match ws.read().expect("echo") {
            tungstenite::Message::Text(t) => assert_eq!(t.as_str(), format!("m{i}")),
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.close(None).unwrap();
}

#[test]
fn many_clients_mixing_every_kind_of_request_get_every_answer() {
    let server = echo_server(&[]);
    let port = server.port;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut s = connect(port);
                for i in 0..120 {
                    match i % 4 {
                        0 | 1 => {
                            assert_eq!(ask(&mut s, get(&format!("/{t}/{i}")).as_bytes()), format!("GET /{t}/{i}|"));
                        }
                        2 => {
                            let body = format!("b{t}.{i}");
                            let req = format!(
                                "POST /{t}/{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            assert_eq!(ask(&mut s, req.as_bytes()), format!("POST /{t}/{i}|{body}"));
                        }
                        _ => {
                            let two = format!("{}{}", get(&format!("/{t}/{i}a")), get(&format!("/{t}/{i}b")));
                            assert_eq!(ask(&mut s, two.as_bytes()), format!("GET /{t}/{i}a|"));
                            assert_eq!(read_one(&mut s).text(), format!("GET /{t}/{i}b|"));
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn a_lua_http_script_reads_bodies_of_later_requests_on_a_connection() {
    let source = "local http_server = require 'http.server'\n\
        local http_headers = require 'http.headers'\n\
        local server = assert(http_server.listen { host = '127.0.0.1', port = 0,\n\
          onstream = function(_, stream)\n\
            local req = assert(stream:get_headers())\n\
            local body = assert(stream:get_body_as_string())\n\
            local res = http_headers.new()\n\
            res:append(':status', '200')\n\
            assert(stream:write_headers(res, false))\n\
            assert(stream:write_chunk(req:get(':method') .. ' ' .. body, true))\n\
          end })\n\
        assert(server:listen())\n\
        print('LISTENING ' .. select(3, server:localname()))\n\
        assert(server:loop())\n";
    let server = Server::start(source, &[]);
    let mut s = connect(server.port);
    for i in 0..20 {
        if i % 2 == 0 {
            assert_eq!(ask(&mut s, get("/").as_bytes()), "GET ");
        } else {
            let body = "x".repeat(i * 100);
            let req = format!(
                "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            assert_eq!(ask(&mut s, req.as_bytes()), format!("PUT {body}"));
        }
    }
    let tail = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    s.write_all(tail).unwrap();
    let got = read_until(&mut s, b"GET ");
    assert!(got.starts_with(b"HTTP/1.1 200"));
}

// --- WebSocket readers parked between messages ------------------------------------------------

/// Echoes every message (text or binary as it came); `bye` makes the script close the
/// connection (1000); prints `CLOSED <code>` when a connection ends.
const WS_ECHO: &str = "local server = assert(http.websocketServer(0))\n\
    print('LISTENING ' .. server.port)\n\
    local clients = {}\n\
    while true do\n\
      local event, a, b, c = os.pullEvent()\n\
      if event == 'websocket_server_connect' then clients[b.clientID] = b\n\
      elseif event == 'websocket_server_message' then\n\
        if b == 'bye' then clients[a].close() else clients[a].send(b, c) end\n\
      elseif event == 'websocket_server_closed' then\n\
        print('CLOSED ' .. tostring(c)) clients[a] = nil\n\
      end\n\
    end\n";

/// A WebSocket client on a raw socket, so frames go out exactly as written.
struct RawWs {
    s: TcpStream,
}

impl RawWs {
    fn connect(port: u16) -> RawWs {
        let mut s = connect(port);
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        let head = read_until(&mut s, b"\r\n\r\n");
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        assert!(head.ends_with(b"\r\n\r\n"), "bytes after the handshake");
        RawWs { s }
    }

    /// A masked client frame.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0xA1, 0xB2, 0xC3, 0xD4];
        let mut f = vec![first];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        f
    }

    fn send(&mut self, frames: &[Vec<u8>]) {
        self.s.write_all(&frames.concat()).unwrap();
    }

    /// The next frame from the server: (first byte, payload).
    fn read(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        self.s.read_exact(&mut head).expect("a frame");
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.s.read_exact(&mut b).unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.s.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        self.s.read_exact(&mut payload).unwrap();
        (head[0], payload)
    }
}

#[test]
fn websocket_messages_are_echoed_in_order_while_the_reader_sleeps() {
    let server = Server::start(WS_ECHO, &[]);
    let mut ws = RawWs::connect(server.port);
    // The first message may still find the reader reading; after it, it parks.
    ws.send(&[RawWs::frame(0x81, b"warm")]);
    assert_eq!(ws.read(), (0x81, b"warm".to_vec()));
    let before = voluntary_switches(server.pid(), "ccserve-ws-read");
    const N: usize = 300;
    for i in 0..N {
        let (first, text) = if i % 3 == 0 {
            (0x82, vec![i as u8, 0, 255])
        } else {
            (0x81, format!("message {i}").into_bytes())
        };
        ws.send(&[RawWs::frame(first, &text)]);
        assert_eq!(ws.read(), (first, text), "message {i}");
    }
    // The Lua thread read those messages itself: the reader slept through them.
    assert_slept_through(&server, "ccserve-ws-read", before, N);
}

#[test]
fn websocket_frames_the_lua_thread_leaves_reach_the_script_in_order() {
    // Large messages, fragments, pings and frames arriving together go to the reader thread;
    // small single frames are read by the Lua thread. Sent back to back, they must still be
    // echoed in the order sent.
    let server = Server::start(WS_ECHO, &[]);
    let mut ws = RawWs::connect(server.port);
    let big = vec![b'b'; 10_000];
    for round in 0..20 {
        let frames = [
            RawWs::frame(0x81, format!("a{round}").as_bytes()),
            RawWs::frame(0x82, &big),
            RawWs::frame(0x89, b"ping"),
            // A text message in two fragments.
            RawWs::frame(0x01, b"frag"),
            RawWs::frame(0x80, b"ment"),
            RawWs::frame(0x81, format!("z{round}").as_bytes()),
        ];
        if round % 2 == 0 {
            ws.send(&frames);
        } else {
            for f in &frames {
                ws.send(std::slice::from_ref(f));
            }
        }
        // Four echoes and a pong, the pong anywhere among them.
        let mut got: Vec<(u8, Vec<u8>)> = (0..5).map(|_| ws.read()).collect();
        let pong = got
            .iter()
            .position(|(first, _)| *first == 0x8A)
            .expect("a pong");
        assert_eq!(got.remove(pong).1, b"ping".to_vec(), "round {round}");
        let want = vec![
            (0x81, format!("a{round}").into_bytes()),
            (0x82, big.clone()),
            (0x81, b"fragment".to_vec()),
            (0x81, format!("z{round}").into_bytes()),
        ];
        assert_eq!(got, want, "round {round}");
    }
}

#[test]
fn a_websocket_client_leaving_or_refused_ends_its_reader() {
    let server = Server::start(WS_ECHO, &[]);
    let idle = threads_of(server.pid());
    // Leaves without a Close frame while parked.
    let mut ws = RawWs::connect(server.port);
    ws.send(&[RawWs::frame(0x81, b"hi")]);
    assert_eq!(ws.read(), (0x81, b"hi".to_vec()));
    drop(ws);
    server.line_starting("CLOSED", WAIT).expect("CLOSED line");
    // Sends invalid UTF-8 as text: refused with 1007 by tungstenite, not by the Lua thread.
    let mut ws = RawWs::connect(server.port);
    ws.send(&[RawWs::frame(0x81, b"ok")]);
    assert_eq!(ws.read(), (0x81, b"ok".to_vec()));
    ws.send(&[RawWs::frame(0x81, &[0xff, 0xfe])]);
    let (first, payload) = ws.read();
    assert_eq!(first, 0x88, "a Close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1007);
    server.line_starting("CLOSED", WAIT).expect("CLOSED line");
    // Unmasked: a protocol error (1002).
    let mut ws = RawWs::connect(server.port);
    ws.send(&[RawWs::frame(0x81, b"ok")]);
    assert_eq!(ws.read(), (0x81, b"ok".to_vec()));
    ws.s.write_all(&[0x81, 2, b'n', b'o']).unwrap();
    let (first, payload) = ws.read();
    assert_eq!(first, 0x88, "a Close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1002);
    server.line_starting("CLOSED", WAIT).expect("CLOSED line");
    let left = common::settles_to(idle, || threads_of(server.pid()));
    assert!(
        left <= idle,
        "{left} threads left, {idle} before the clients came"
    );
}

#[test]
fn the_script_closing_a_parked_websocket_completes_the_closing_handshake() {
    let server = Server::start(WS_ECHO, &[]);
    let mut ws = RawWs::connect(server.port);
    ws.send(&[RawWs::frame(0x81, b"one")]);
    assert_eq!(ws.read(), (0x81, b"one".to_vec()));
    ws.send(&[RawWs::frame(0x81, b"bye")]);
    let (first, payload) = ws.read();
    assert_eq!(first, 0x88, "a Close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1000);
    // Our Close reply, read by the parked reader's stand-in and handed back to tungstenite.
    ws.send(&[RawWs::frame(0x88, &payload[..2])]);
    assert!(closed_within(&mut ws.s, WAIT), "connection left open");
    server.line_starting("CLOSED", WAIT).expect("CLOSED line");
}

#[test]
fn a_connection_idle_after_a_slow_request_read_by_the_lua_thread_still_closes_on_time() {
    // The second request keeps the Lua thread (which read it) busy for 1.5 s before it answers
    // whole: meanwhile the connection thread's keep-alive timer (1 s) fires and finds the
    // request in the Lua thread's hands. Once the response is out, the connection is idle and
    // must close 1 s later, not at the response timeout (60 s) the connection thread waited
    // with while the request was in flight.
    let server = Server::start(
        &common::listen_script(
            "if req.getURL() == '/slow' then\n\
               local t = os.epoch('utc') while os.epoch('utc') - t < 1500 do end\n\
             end\n\
             res.write('done') res.close()",
        ),
        &["--keep-alive-timeout", "1", "--response-timeout", "60"],
    );
    let mut s = parked_connection(server.port);
    assert_eq!(ask(&mut s, get("/slow")), "done");
    // Keep-alive timeout 1 s; the response timeout would be 60 s. The idle time starts at the
    // answer, read just now: the lower bound leaves this thread half a second to be late.
    common::assert_closed_when_idle(
        &mut s,
        Instant::now(),
        Duration::from_millis(500),
        Duration::from_secs(15),
    );
}

#[test]
fn a_request_arriving_while_the_lua_thread_holds_the_last_one_is_read() {
    // Parking again after a request the Lua thread answered costs no system call: the socket
    // stays watched, edge-triggered (src/lane.rs). Bytes that arrive while the Lua thread still
    // has the request make their edge then, and must not be forgotten. Here /1 is read by the
    // Lua thread while the script waits in `res.flush()` for a client that does not read, so its
    // event stays queued; /2 arrives meanwhile. Once the stream is drained and /1 answered, /2
    // must be read at once, not left to the connection thread, which would look at the socket
    // only when the keep-alive or response timeout (120 s) ran out.
    let script = "local port = http.addListener(0)\n\
        print('LISTENING ' .. port)\n\
        while true do\n\
          local ev, p, req, res = os.pullEvent()\n\
          if ev == 'http_request' then\n\
            if req.getURL() == '/stream' then\n\
              print('FLUSHING')\n\
              for i = 1, 256 do res.write(string.rep('x', 65536)) res.flush() end\n\
              res.close()\n\
            else\n\
              res.write('got ' .. req.getURL()) res.close()\n\
            end\n\
          end\n\
        end\n";
    let server = Server::start(
        script,
        &["--response-timeout", "120", "--keep-alive-timeout", "120"],
    );
    let mut parked = parked_connection(server.port);
    // The server's end of that connection, seen from it: (its address, the client's).
    let ends = (parked.peer_addr().unwrap(), parked.local_addr().unwrap());
    let mut streamed = connect(server.port);
    streamed.write_all(get("/stream").as_bytes()).unwrap();
    server.expect_line("FLUSHING");
    parked.write_all(get("/1").as_bytes()).unwrap();
    // Wait (bounded) until the server has read /1: the script is stuck in its flush, so only the
    // Lua thread's look at the parked socket can have.
    let deadline = Instant::now() + WAIT;
    while common::tcp_queues(ends.0, ends.1).map(|(_, unread)| unread) != Some(0) {
        assert!(Instant::now() < deadline, "the server never read /1");
        std::thread::sleep(Duration::from_millis(2));
    }
    parked.write_all(get("/2").as_bytes()).unwrap();
    let stream = read_one(&mut streamed);
    assert_eq!(stream.body.len(), 256 * 65536);
    // A forgotten /2 would wait 120 s; this read gives up after WAIT (20 s).
    parked.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(read_one(&mut parked).text(), "got /1");
    assert_eq!(read_one(&mut parked).text(), "got /2");
}

#[test]
fn a_request_filling_the_lua_threads_read_exactly_is_followed_by_the_next() {
    // The Lua thread reads a parked socket 4096 bytes at a time. A request of exactly that size,
    // with the next one right behind it, looks complete with nothing behind it; the bytes left
    // in the socket make no new edge, so parking again must look at the socket again.
    let server = Server::start(
        &common::listen_script(ECHO),
        &["--response-timeout", "120", "--keep-alive-timeout", "120"],
    );
    let mut s = parked_connection(server.port);
    let head = "GET /exact HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: \r\n\r\n";
    let pad = "p".repeat(4096 - head.len());
    let exact = format!("GET /exact HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {pad}\r\n\r\n");
    assert_eq!(exact.len(), 4096);
    s.write_all(format!("{exact}{}", get("/next")).as_bytes())
        .unwrap();
    // A forgotten /next would wait 120 s; this read gives up after WAIT (20 s).
    s.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(read_one(&mut s).text(), "GET /exact|");
    assert_eq!(read_one(&mut s).text(), "GET /next|");
}

#[test]
fn a_body_read_by_the_connection_thread_does_not_wake_the_lua_thread() {
    // Handed back for its body, the socket is the connection thread's: it stops the Lua thread
    // watching it (the registration is edge-triggered, and would otherwise report each piece
    // of the body as it arrives to a Lua thread that can do nothing with it).
    const PIECES: usize = 400;
    let server = echo_server(&["--max-body", "8000000"]);
    let mut s = parked_connection(server.port);
    // Under qemu-user the emulator's own threads carry the binary's name too (and the count is
    // not checked there, see `assert_slept_through`).
    let before = if common::under_emulator(server.pid()) {
        None
    } else {
        voluntary_switches(server.pid(), "ccserve")
    };
    let piece = vec![b'b'; 16 * 1024];
    s.write_all(
        format!(
            "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            PIECES * piece.len()
        )
        .as_bytes(),
    )
    .unwrap();
    for _ in 0..PIECES {
        s.write_all(&piece).unwrap();
    }
    let response = read_one(&mut s);
    assert_eq!(
        response.body.len(),
        "POST /up|".len() + PIECES * piece.len()
    );
    assert_slept_through(&server, "ccserve", before, PIECES);
}
