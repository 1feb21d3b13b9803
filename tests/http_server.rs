//! HTTP protocol behaviour of the server side (`http.listen`, `http.addListener`, `http_request`),
//! exercised against the real `ccserve` binary over real TCP on 127.0.0.1.
//!
//! Nothing here sleeps to synchronise: tests wait on a response, a line of stdout, or a closed
//! socket, always with a bound.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{closed_within, connect, exchange, get, read_response, Response, Server, WAIT};

/// Upper bound for "answered quickly while something else is stuck". Generous on purpose: the
/// point is "not blocked behind the stuck client", not speed.
const QUICK: Duration = Duration::from_secs(5);

/// Echoes method, target and body: `GET /x|` or `POST /x|body`.
const ECHO: &str =
    "res.write(req.getMethod() .. ' ' .. req.getURL() .. '|' .. req.readAll())\nres.close()";

/// Echoes the request body byte for byte.
const BODY_ECHO: &str = "res.write(req.readAll())\nres.close()";

fn echo_server(extra: &[&str]) -> Server {
    Server::start(&common::listen_script(ECHO), extra)
}

/// A GET without `Connection: close`.
fn keep_alive_get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
}

fn read_one(stream: &mut TcpStream) -> Response {
    read_response(stream, false).expect("a response before the connection closed")
}

/// Asserts `stream` has received nothing so far (no response, no close), without waiting.
fn assert_nothing_received(stream: &TcpStream, what: &str) {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    let result = (&*stream).read(&mut buf);
    stream.set_nonblocking(false).unwrap();
    match result {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok(0) => panic!("{what}: the server closed the connection"),
        Ok(n) => panic!(
            "{what}: unexpectedly received {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Asserts nothing listens on 127.0.0.1:`port` any more.
fn assert_refused(port: u16) {
    match TcpStream::connect(("127.0.0.1", port)) {
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::ConnectionRefused,
            "connecting to a closed port: {e}"
        ),
        Ok(_) => panic!("port {port} still accepts connections"),
    }
}

/// Sends a (possibly huge or malformed) request, tolerating a write error if the server already
/// answered and stopped reading, and reads the answer.
fn exchange_tolerant(port: u16, request: &[u8]) -> Response {
    let mut s = connect(port);
    if let Err(e) = s.write_all(request) {
        eprintln!("(write stopped early: {e})");
    }
    read_one(&mut s)
}

/// A non-trivial byte pattern of length `n`, with NUL bytes and every byte value.
fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            let x = i as u32;
            if i % 1000 < 3 {
                0
            } else {
                (x.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (x >> 10) as u8
            }
        })
        .collect()
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or(if a.len() != b.len() {
            Some(a.len().min(b.len()))
        } else {
            None
        })
}

// ---------------------------------------------------------------------------------------------
// Keep-alive, HTTP/1.0, Connection: close, pipelining, concurrency
// ---------------------------------------------------------------------------------------------

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = echo_server(&[]);
    let mut s = connect(server.port);
    for i in 0..5 {
        s.write_all(keep_alive_get(&format!("/ka/{i}")).as_bytes())
            .unwrap();
        let resp = read_one(&mut s);
        assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
        assert_eq!(resp.text(), format!("GET /ka/{i}|"));
        assert!(
            resp.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
            "request {i}: headers {:?}",
            resp.headers
        );
    }
    // A POST with a body on the same connection keeps the stream in sync too.
    s.write_all(b"POST /ka/post HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
        .unwrap();
    assert_eq!(read_one(&mut s).text(), "POST /ka/post|body");
    s.write_all(keep_alive_get("/ka/last").as_bytes()).unwrap();
    assert_eq!(read_one(&mut s).text(), "GET /ka/last|");
}

#[test]
fn http_1_0_request_gets_1_0_response_and_close() {
    let server = echo_server(&[]);
    let mut s = connect(server.port);
    s.write_all(b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.status_line, "HTTP/1.0 200 OK");
    assert_eq!(resp.text(), "GET /old|");
    assert!(
        resp.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "headers {:?}",
        resp.headers
    );
    assert!(
        closed_within(&mut s, WAIT),
        "HTTP/1.0 connection was not closed"
    );
}

#[test]
fn connection_close_from_http_1_1_client_is_honoured() {
    let server = echo_server(&[]);
    let mut s = connect(server.port);
    s.write_all(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "GET /bye|");
    assert!(
        resp.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "headers {:?}",
        resp.headers
    );
    assert!(closed_within(&mut s, WAIT), "connection was not closed");
}

#[test]
fn a_closing_response_closes_the_connection_at_once_not_at_a_timeout() {
    // The Lua thread writes this small response itself; the connection thread must still be
    // woken to close (it once waited for the response or keep-alive timeout, 15 s by default).
    let server = echo_server(&["--keep-alive-timeout", "60", "--response-timeout", "60"]);
    for _ in 0..5 {
        let mut s = connect(server.port);
        s.write_all(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert_eq!(read_one(&mut s).status, 200);
        assert!(
            closed_within(&mut s, Duration::from_secs(10)),
            "connection still open 10 s after a Connection: close response"
        );
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = echo_server(&[]);
    let mut s = connect(server.port);
    let batch = "GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
                 POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\npayload\
                 GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    s.write_all(batch.as_bytes()).unwrap();
    let bodies: Vec<String> = (0..3).map(|_| read_one(&mut s).text()).collect();
    assert_eq!(
        bodies,
        ["GET /first|", "POST /second|payload", "GET /third|"]
    );
    assert!(closed_within(&mut s, WAIT));
}

#[test]
fn idle_keep_alive_closes_after_the_keep_alive_timeout_not_the_response_timeout() {
    // A small response is written by the Lua thread itself while the connection thread sleeps
    // with the response deadline (`src/http/direct.rs`): the idle time must still count from the
    // response, by the keep-alive timeout.
    let server = echo_server(&["--keep-alive-timeout", "1", "--response-timeout", "60"]);
    let mut s = connect(server.port);
    let mut last_sent = Instant::now();
    for i in 0..3 {
        last_sent = Instant::now();
        s.write_all(keep_alive_get(&format!("/idle/{i}")).as_bytes())
            .unwrap();
        assert_eq!(read_one(&mut s).text(), format!("GET /idle/{i}|"));
    }
    // Keep-alive timeout 1 s; the response timeout would be 60 s.
    common::assert_closed_when_idle(
        &mut s,
        last_sent,
        Duration::from_millis(900),
        Duration::from_secs(15),
    );
}

#[test]
fn pipelined_responses_larger_than_a_small_receive_window_arrive_whole() {
    // The client's receive buffer is tiny and it reads only once every request is sent, so the
    // socket fills: responses the Lua thread starts writing are finished by the connection thread.
    // The requests after the first are read off the socket with it, so nothing on the socket
    // tells the connection thread that a response went out: it must be woken. The timeouts are
    // longer than the client's read timeout, so a missed wake-up fails the test.
    let server = Server::start(
        &common::listen_script(
            "local n = tonumber(req.getURL():match('%d+'))\n\
             res.write(string.rep(string.char(65 + n % 26), 20000 + n))\n\
             res.close()",
        ),
        &["--response-timeout", "60", "--keep-alive-timeout", "60"],
    );
    let mut s = common::connect_with_small_window(server.port, 2048);
    const N: usize = 24;
    let batch: String = (0..N)
        .map(|i| keep_alive_get(&format!("/big/{i}")))
        .collect();
    s.write_all(batch.as_bytes()).unwrap();
    for i in 0..N {
        let resp = read_one(&mut s);
        assert_eq!(resp.status, 200, "response {i}");
        let want =
            std::iter::repeat_n(char::from(65 + (i % 26) as u8), 20000 + i).collect::<String>();
        assert!(
            resp.text() == want,
            "response {i}: {} bytes, not the {} expected",
            resp.body.len(),
            want.len()
        );
    }
}

#[test]
fn hundred_concurrent_clients_each_get_their_own_answer() {
    let server = echo_server(&[]);
    let port = server.port;
    let start = Arc::new(Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let start = start.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let mut s = connect(port);
                let body = format!("unique-{i}-{}", i * 7919);
                let req = format!(
                    "POST /client/{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                start.wait();
                s.write_all(req.as_bytes())
                    .map_err(|e| format!("{i}: {e}"))?;
                let resp = read_response(&mut s, false).ok_or(format!("{i}: no response"))?;
                let want = format!("POST /client/{i}|{body}");
                if resp.status != 200 || resp.text() != want {
                    return Err(format!(
                        "client {i}: got {} {:?}, want {want:?}",
                        resp.status,
                        resp.text()
                    ));
                }
                Ok(())
            })
        })
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap().err())
        .collect();
    assert!(failures.is_empty(), "failures: {failures:#?}");
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn ten_megabyte_request_and_response_bodies_are_byte_identical() {
    let server = Server::start(&common::listen_script(BODY_ECHO), &[]);
    let body = pattern(10 * 1024 * 1024);
    assert!(body.contains(&0));
    let mut s = connect(server.port);
    let head = format!(
        "POST /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert!(
        resp.body == body,
        "echoed body differs (lengths {} vs {}, first difference at {:?})",
        resp.body.len(),
        body.len(),
        first_difference(&resp.body, &body)
    );
}

#[test]
fn chunked_request_bodies_are_decoded() {
    let server = Server::start(&common::listen_script(BODY_ECHO), &[]);
    let mut s = connect(server.port);
    s.write_all(
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n\
          1;ext=1\r\n \r\n\
          A\r\n0123456789\r\n\
          0\r\nX-Trailer: yes\r\n\r\n",
    )
    .unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "hello 0123456789");
    // The connection is still in sync after the chunked body (and its trailer).
    let mut chunk = b"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunk.extend_from_slice(b"3\r\na\0b\r\n0\r\n\r\n");
    s.write_all(&chunk).unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.body, b"a\0b");
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let server = Server::start(&common::listen_script(BODY_ECHO), &[]);
    let mut s = connect(server.port);
    s.write_all(
        b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    // Nothing of the body was sent yet: the server must speak first.
    let interim = read_one(&mut s);
    assert_eq!(interim.status, 100, "status line {:?}", interim.status_line);
    assert!(interim.status_line.starts_with("HTTP/1.1 100"));
    s.write_all(b"hello world").unwrap();
    let resp = read_one(&mut s);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "hello world");
}

#[test]
fn bodies_above_max_body_get_413() {
    let server = Server::start(&common::listen_script(BODY_ECHO), &["--max-body", "1000"]);
    let port = server.port;

    // Exactly at the limit: accepted.
    let ok = pattern(1000);
    let mut req =
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n".to_vec();
    req.extend_from_slice(&ok);
    let resp = exchange(port, &req);
    assert_eq!(resp.status, 200);
    assert!(resp.body == ok, "body at the limit was not echoed intact");

    // Content-Length above the limit.
    let mut req = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n".to_vec();
    req.extend_from_slice(&pattern(2000));
    assert_eq!(exchange_tolerant(port, &req).status, 413);

    // Chunked body growing above the limit.
    let mut req = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[b'z'; 0x200]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(exchange_tolerant(port, &req).status, 413);

    // With Expect: 100-continue, the 413 comes instead of 100 Continue.
    let mut s = connect(port);
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_one(&mut s).status, 413);

    assert_eq!(get(port, "/after").status, 200);
}

// ---------------------------------------------------------------------------------------------
// Slow or stuck clients do not delay others
// ---------------------------------------------------------------------------------------------

/// Times a fresh `GET path` and checks it is answered `expect_body`.
fn timed_get(port: u16, path: &str, expect_body: &str) -> Duration {
    let t = Instant::now();
    let resp = get(port, path);
    let elapsed = t.elapsed();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), expect_body);
    elapsed
}

#[test]
fn client_stalled_mid_body_does_not_delay_others() {
    let server = echo_server(&[]);
    let mut stalled = connect(server.port);
    stalled
        .write_all(b"POST /stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
        .unwrap();
    let latency = timed_get(server.port, "/second", "GET /second|");
    println!("stalled-body: second client answered in {latency:?}");
    assert!(latency < QUICK, "second client waited {latency:?}");
    assert_nothing_received(&stalled, "the stalled client");
}

#[test]
fn client_asking_for_upgrade_and_holding_the_socket_does_not_delay_others() {
    let server = echo_server(&[]);
    let upgrader = connect(server.port);
    (&upgrader)
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
    let latency = timed_get(server.port, "/second", "GET /second|");
    println!("upgrade: second client answered in {latency:?}");
    assert!(latency < QUICK, "second client waited {latency:?}");
    drop(upgrader);
}

#[test]
fn client_never_reading_a_large_response_does_not_delay_others() {
    // The body is built once, before the listener opens: building 64 MiB inside the handler took
    // about 10 s under qemu in the debug build, so on a loaded machine the response timeout could
    // pass first (the empty buffered response went out instead, and the check still passed).
    let server = Server::start(
        "local big = string.rep('x', 64 * 1024 * 1024)\n\
         local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         while true do\n\
           local _, _, req, res = os.pullEvent('http_request')\n\
           if req.getURL() == '/big' then res.write(big) else res.write('small') end\n\
           res.close()\n\
         end\n",
        &[],
    );
    let mut reader = connect(server.port);
    reader.write_all(keep_alive_get("/big").as_bytes()).unwrap();
    // Read the head and the first body bytes: the big response is on its way. Then never read
    // again.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        reader.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "head: {head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {}", 64 * 1024 * 1024)),
        "head: {head}"
    );
    let mut first = [0u8; 4096];
    reader.read_exact(&mut first).expect("first body bytes");
    assert!(first.iter().all(|&b| b == b'x'), "body is not the big one");
    let latency = timed_get(server.port, "/small", "small");
    println!("unread 64 MB response: second client answered in {latency:?}");
    assert!(latency < QUICK, "second client waited {latency:?}");
    drop(reader);
}

#[test]
fn burst_of_64_keep_alive_connections_all_answered() {
    let server = echo_server(&[]);
    let streams: Vec<TcpStream> = (0..64).map(|_| connect(server.port)).collect();
    let start = Arc::new(Barrier::new(64));
    let threads: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            let start = start.clone();
            std::thread::spawn(move || -> Result<Duration, String> {
                start.wait();
                let t = Instant::now();
                s.write_all(keep_alive_get(&format!("/burst/{i}")).as_bytes())
                    .map_err(|e| format!("{i}: {e}"))?;
                let resp = read_response(&mut s, false).ok_or(format!("{i}: no response"))?;
                let elapsed = t.elapsed();
                if resp.status != 200 || resp.text() != format!("GET /burst/{i}|") {
                    return Err(format!("{i}: got {} {:?}", resp.status, resp.text()));
                }
                Ok(elapsed)
            })
        })
        .collect();
    let results: Vec<Result<Duration, String>> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "failures: {failures:#?}");
    let slowest = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .max()
        .copied()
        .unwrap();
    println!("burst of 64: slowest first answer took {slowest:?}");
    assert!(
        slowest < Duration::from_secs(10),
        "slowest took {slowest:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed requests
// ---------------------------------------------------------------------------------------------

fn assert_rejected(port: u16, what: &str, request: &[u8], status: u16) {
    let mut s = connect(port);
    if let Err(e) = s.write_all(request) {
        eprintln!("({what}: write stopped early: {e})");
    }
    let resp = read_response(&mut s, false)
        .unwrap_or_else(|| panic!("{what}: connection closed without a response"));
    assert_eq!(
        resp.status, status,
        "{what}: status line {:?}",
        resp.status_line
    );
    assert!(
        closed_within(&mut s, WAIT),
        "{what}: connection left open after {status}"
    );
    let after = get(port, "/after");
    assert_eq!(
        after.status, 200,
        "{what}: next request on a new connection"
    );
    assert_eq!(after.text(), "GET /after|");
}

#[test]
fn garbage_request_line_gets_400() {
    let server = echo_server(&[]);
    assert_rejected(
        server.port,
        "garbage",
        b"this is not http at all\r\n\r\n",
        400,
    );
}

#[test]
fn bad_header_syntax_gets_400() {
    let server = echo_server(&[]);
    assert_rejected(
        server.port,
        "header without colon",
        b"GET / HTTP/1.1\r\nHost: x\r\nNo Colon Here\r\n\r\n",
        400,
    );
    assert_rejected(
        server.port,
        "space in header name",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
        400,
    );
}

#[test]
fn over_long_request_line_gets_414() {
    let server = echo_server(&[]);
    let req = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(10 * 1024));
    assert_rejected(server.port, "10 KiB request line", req.as_bytes(), 414);
}

#[test]
fn too_many_headers_get_431() {
    let server = echo_server(&[]);
    let mut req = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    assert_rejected(server.port, "150 headers", req.as_bytes(), 431);
}

#[test]
fn huge_header_section_gets_431() {
    let server = echo_server(&[]);
    let mut req = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..80 {
        req.push_str(&format!("X-Big{i}: {}\r\n", "b".repeat(1000)));
    }
    req.push_str("\r\n");
    assert_rejected(server.port, "80 KB of headers", req.as_bytes(), 431);
}

#[test]
fn invalid_chunked_encoding_gets_400() {
    let server = echo_server(&[]);
    assert_rejected(
        server.port,
        "bad chunk size",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    );
    assert_rejected(
        server.port,
        "chunk longer than its size",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn conflicting_content_lengths_get_400() {
    let server = echo_server(&[]);
    assert_rejected(
        server.port,
        "two Content-Length values",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    );
}

#[test]
fn unsupported_transfer_encoding_gets_501() {
    let server = echo_server(&[]);
    assert_rejected(
        server.port,
        "Transfer-Encoding: gzip",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        501,
    );
}

// ---------------------------------------------------------------------------------------------
// What goes on the wire
// ---------------------------------------------------------------------------------------------

#[test]
fn head_gets_content_length_of_the_body_but_no_body() {
    let server = Server::start(
        &common::listen_script("res.write('hello world')\nres.close()"),
        &[],
    );
    let mut s = connect(server.port);
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = read_response(&mut s, true).expect("HEAD response");
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(head.header("content-length"), Some("11"));
    // If any body bytes followed the HEAD response, the next response would not parse.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let next = read_one(&mut s);
    assert_eq!(next.status_line, "HTTP/1.1 200 OK");
    assert_eq!(next.text(), "hello world");
    assert!(closed_within(&mut s, WAIT));
}

#[test]
fn framing_is_ours_whatever_headers_the_script_sets() {
    let server = Server::start(
        &common::listen_script(
            "res.setResponseHeader('Content-Length', '3')\n\
             res.setResponseHeader('Transfer-Encoding', 'chunked')\n\
             res.write('Hello, World!')\nres.close()",
        ),
        &[],
    );
    let mut s = connect(server.port);
    for round in 0..2 {
        s.write_all(keep_alive_get("/framed").as_bytes()).unwrap();
        let resp = read_one(&mut s);
        assert_eq!(resp.status, 200, "round {round}");
        let lengths: Vec<&str> = resp
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(lengths, ["13"], "round {round}: headers {:?}", resp.headers);
        assert_eq!(
            resp.header("transfer-encoding"),
            None,
            "round {round}: headers {:?}",
            resp.headers
        );
        assert_eq!(resp.text(), "Hello, World!");
    }
}

#[test]
fn status_line_reason_phrases_and_default_headers() {
    let server = Server::start(
        &common::listen_script(
            "local url = req.getURL()\n\
             if url == '/404' then res.setStatusCode(404) res.write('nope')\n\
             elseif url == '/yay' then res.setStatusCode(201, 'Yay') end\n\
             res.close()",
        ),
        &[],
    );
    let not_found = get(server.port, "/404");
    assert_eq!(not_found.status_line, "HTTP/1.1 404 Not Found");
    assert_eq!(not_found.text(), "nope");

    let yay = get(server.port, "/yay");
    assert_eq!(yay.status_line, "HTTP/1.1 201 Yay");

    let ok = get(server.port, "/");
    assert_eq!(ok.status_line, "HTTP/1.1 200 OK");
    assert_eq!(ok.header("content-length"), Some("0"));
    for resp in [&not_found, &yay, &ok] {
        assert_eq!(
            resp.header("content-type"),
            None,
            "no default Content-Type expected: {:?}",
            resp.headers
        );
        let date = resp
            .header("date")
            .unwrap_or_else(|| panic!("no Date header: {:?}", resp.headers));
        assert!(
            date.ends_with(" GMT") && date.len() == 29,
            "Date {date:?} is not an IMF-fixdate"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Script failures, unclosed responses, filtered events
// ---------------------------------------------------------------------------------------------

#[test]
fn callback_error_answers_500_and_exits_1_with_traceback() {
    let mut proc = Server::start(&common::listen_script("error('boom')"), &[]);
    let t = Instant::now();
    let resp = get(proc.port, "/explode");
    println!(
        "callback error: answered {} in {:?}",
        resp.status,
        t.elapsed()
    );
    assert_eq!(resp.status, 500, "status line {:?}", resp.status_line);
    let status = proc.wait_exit(WAIT).expect("process exited");
    assert_eq!(status.code(), Some(1));
    let stderr = proc.stderr_when_closed();
    assert!(stderr.contains("boom"), "stderr: {stderr}");
    assert!(stderr.contains("stack traceback"), "stderr: {stderr}");
}

#[test]
fn response_never_closed_is_sent_as_buffered_after_the_response_timeout() {
    // The handles are kept referenced so only the timeout (not garbage collection) answers.
    let server = Server::start(
        &common::listen_script(
            "kept = kept or {}\nkept[#kept + 1] = { req, res }\n\
             res.setStatusCode(202)\nres.write('partial')",
        ),
        &["--response-timeout", "1"],
    );
    let t = Instant::now();
    let resp = get(server.port, "/unclosed");
    let elapsed = t.elapsed();
    println!("unclosed response sent after {elapsed:?}");
    assert_eq!(resp.status, 202, "status line {:?}", resp.status_line);
    assert_eq!(resp.text(), "partial");
    assert!(
        elapsed >= Duration::from_millis(900),
        "sent after only {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "sent after {elapsed:?}");
}

#[test]
fn garbage_collected_response_handle_is_answered_500_promptly() {
    let server = Server::start(
        "local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         while true do\n\
           local _, _, req, res = os.pullEvent('http_request')\n\
           if req.getURL() == '/drop' then\n\
             res.write('never sent')\n\
             req, res = nil, nil\n\
             collectgarbage()\n\
             collectgarbage()\n\
           else\n\
             res.write('ok') res.close()\n\
           end\n\
         end\n",
        &["--response-timeout", "60"],
    );
    let t = Instant::now();
    let resp = get(server.port, "/drop");
    let elapsed = t.elapsed();
    println!("dropped handle answered {} after {elapsed:?}", resp.status);
    assert_eq!(resp.status, 500, "status line {:?}", resp.status_line);
    assert!(elapsed < QUICK, "answered after {elapsed:?}");
    assert_eq!(get(server.port, "/next").text(), "ok");
}

/// Sends four requests in a row to a script that drops every response without closing it, and
/// checks that each is answered `500` promptly: the idle-time collection must run again for each
/// (it is at most every 250 ms apart, so later ones wait for it), and nothing the script's loop
/// still holds may keep the dropped handles alive.
fn assert_dropped_responses_answered_500(source: &str) {
    let server = Server::start(source, &["--response-timeout", "60"]);
    // 250 ms between collections; the bound only tells a collection from the 60 s response
    // timeout, with room for a loaded machine or qemu-user.
    let bound = QUICK;
    for i in 0..4 {
        let t = Instant::now();
        let resp = get(server.port, &format!("/dropped{i}"));
        let elapsed = t.elapsed();
        println!(
            "dropped response {i} answered {} after {elapsed:?}",
            resp.status
        );
        assert_eq!(resp.status, 500, "request {i}: {:?}", resp.status_line);
        assert!(elapsed < bound, "request {i} answered after {elapsed:?}");
    }
}

#[test]
fn listen_callback_returning_without_closing_is_answered_500_each_time() {
    assert_dropped_responses_answered_500(&common::listen_script(""));
}

#[test]
fn responses_dropped_in_a_pull_event_loop_are_answered_500_each_time() {
    assert_dropped_responses_answered_500(
        "local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         while true do\n\
           local _, _, req, res = os.pullEvent('http_request')\n\
           res.write('never sent ' .. req.getURL())\n\
         end\n",
    );
}

#[test]
fn responses_dropped_inside_parallel_are_answered_500_each_time() {
    assert_dropped_responses_answered_500(
        "local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         parallel.waitForAny(function()\n\
           while true do\n\
             local _, _, req, res = os.pullEvent('http_request')\n\
             res.write('never sent ' .. req.getURL())\n\
           end\n\
         end, function()\n\
           while true do os.pullEvent('never_queued') end\n\
         end)\n",
    );
}

#[test]
fn request_rejected_by_the_event_filter_is_answered_503_at_once() {
    let server = Server::start(
        &common::listen_script(
            "if req.getURL() == '/sleep' then\n\
               print('SLEEPING')\n\
               sleep(5)\n\
               res.write('slept')\n\
             else res.write('other') end\n\
             res.close()",
        ),
        &[],
    );
    let mut sleeper = connect(server.port);
    sleeper
        .write_all(keep_alive_get("/sleep").as_bytes())
        .unwrap();
    server
        .line_starting("SLEEPING", WAIT)
        .expect("script started sleeping");
    let t = Instant::now();
    let resp = get(server.port, "/during");
    let elapsed = t.elapsed();
    println!(
        "request during sleep(5) answered {} after {elapsed:?}",
        resp.status
    );
    assert_eq!(resp.status, 503, "status line {:?}", resp.status_line);
    assert!(
        elapsed < Duration::from_secs(4),
        "answered after {elapsed:?}"
    );
    // The sleep has not ended yet: the sleeping request is still unanswered.
    assert_nothing_received(&sleeper, "the request being slept on");
    let slept = read_one(&mut sleeper);
    assert_eq!(slept.status, 200);
    assert_eq!(slept.text(), "slept");
}

// ---------------------------------------------------------------------------------------------
// Listener lifetime
// ---------------------------------------------------------------------------------------------

#[test]
fn remove_listener_frees_the_port_and_add_listener_rebinds_it() {
    let server = Server::start(
        "local ctl = http.addListener(0)\n\
         local main = http.addListener(0)\n\
         print('LISTENING ' .. ctl)\n\
         print('MAIN ' .. main)\n\
         while true do\n\
           local _, port, req, res = os.pullEvent('http_request')\n\
           local url = req.getURL()\n\
           if port == ctl then\n\
             if url == '/remove' then http.removeListener(main) res.write('removed')\n\
             elseif url == '/readd' then http.addListener(main) res.write('readded') end\n\
           else\n\
             res.write('main ' .. url)\n\
           end\n\
           res.close()\n\
         end\n",
        &[],
    );
    let main: u16 = server
        .line_starting("MAIN ", WAIT)
        .expect("MAIN line")
        .trim_start_matches("MAIN ")
        .parse()
        .unwrap();
    assert_eq!(get(main, "/a").text(), "main /a");
    assert_eq!(get(server.port, "/remove").text(), "removed");
    assert_refused(main);
    assert_eq!(get(server.port, "/readd").text(), "readded");
    assert_eq!(get(main, "/b").text(), "main /b");
}

/// A control listener (the announced port) and a main listener: `/remove` on the control port
/// removes the main listener and prints `REMOVED`.
const CONTROLLED_MAIN: &str = "local ctl = http.addListener(0)\n\
     local main = http.addListener(0)\n\
     print('LISTENING ' .. ctl)\n\
     print('MAIN ' .. main)\n\
     local held = {}\n\
     while true do\n\
       local _, port, req, res = os.pullEvent('http_request')\n\
       if port == ctl then\n\
         http.removeListener(main)\n\
         res.write('removed')\n\
         res.close()\n\
         print('REMOVED')\n\
       elseif req.getURL() == '/hold' then\n\
         held[#held + 1] = res -- never closed, never collected\n\
         print('HOLDING')\n\
       else\n\
         res.write('main ' .. req.getURL())\n\
         res.close()\n\
       end\n\
     end\n";

fn main_port(server: &Server) -> u16 {
    server
        .line_starting("MAIN ", WAIT)
        .expect("MAIN line")
        .trim_start_matches("MAIN ")
        .parse()
        .unwrap()
}

#[test]
fn keep_alive_connection_of_a_removed_listener_is_closed_at_once() {
    let server = Server::start(CONTROLLED_MAIN, &["--keep-alive-timeout", "600"]);
    let main = main_port(&server);
    let mut conn = connect(main);
    conn.write_all(keep_alive_get("/a").as_bytes()).unwrap();
    let first = read_one(&mut conn);
    assert_eq!(first.text(), "main /a");
    assert_eq!(first.header("connection"), Some("keep-alive"));

    assert_eq!(get(server.port, "/remove").text(), "removed");
    server.line_starting("REMOVED", WAIT).expect("REMOVED line");
    assert_refused(main);

    // The idle connection was closed by the removal (no request was in flight on it), long
    // before its keep-alive timeout.
    assert!(closed_within(&mut conn, WAIT), "connection left open");
}

#[test]
fn request_in_flight_when_its_listener_is_removed_is_answered_500() {
    let server = Server::start(CONTROLLED_MAIN, &[]);
    let main = main_port(&server);
    let mut conn = connect(main);
    conn.write_all(keep_alive_get("/hold").as_bytes()).unwrap();
    server.line_starting("HOLDING", WAIT).expect("HOLDING line");

    let started = Instant::now();
    assert_eq!(get(server.port, "/remove").text(), "removed");
    let resp = read_one(&mut conn);
    assert_eq!(resp.status, 500, "{}", resp.status_line);
    // Well before the 15 s response timeout: the removal answered it.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(closed_within(&mut conn, WAIT), "connection left open");
}

#[test]
fn add_listener_on_a_port_bound_elsewhere_raises_could_not_open_server() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let mut server = Server::spawn(
        "local ok, err = pcall(http.addListener, tonumber(...))\n\
         print('OK ' .. tostring(ok))\n\
         print('ERR ' .. (tostring(err):gsub('\\n', '\\\\n')))\n",
        &[],
        &[&port],
    );
    let ok = server.line_starting("OK ", WAIT).expect("OK line");
    let err = server.line_starting("ERR ", WAIT).expect("ERR line");
    assert_eq!(ok, "OK false", "addListener on a held port succeeded");
    assert!(
        err.starts_with("ERR Could not open server: "),
        "error was {err:?}"
    );
    let status = server.wait_exit(WAIT).expect("script ended");
    assert_eq!(status.code(), Some(0));
    drop(holder);
}

#[test]
fn script_end_exits_0_and_closes_the_port() {
    let mut server = Server::start(
        "local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         local _, _, req, res = os.pullEvent('http_request')\n\
         res.write('last')\n\
         res.close()\n",
        &[],
    );
    assert_eq!(get(server.port, "/").text(), "last");
    let status = server.wait_exit(WAIT).expect("process exited");
    assert_eq!(status.code(), Some(0), "stderr: {}", server.stderr());
    assert_refused(server.port);
}
