//! Pitfalls H1, H3 and H4 of tiny_http 0.12.0 (see the stack notes), reproduced as tests.
//!
//! Each pitfall has one scenario function that talks to a server at a `SocketAddr` and returns
//! what it observed. The normal tests run the scenario against the real `ccserve` binary and
//! assert that ccserve's own HTTP engine does not have the pitfall. The `#[ignore]`d tests run the
//! same scenario against an in-process stock tiny_http 0.12 server (one thread answering `recv()`
//! with a hello-world response, as in tiny_http's own examples) and assert that the pitfall is
//! reproduced:
//!
//! ```text
//! cargo test --test pitfalls -- --ignored --nocapture
//! ```
//!
//! - H1: a burst of keep-alive connections, most never served (race in tiny_http's `TaskPool`).
//! - H3: no timeouts: an idle client, or one that sent half a request head, holds its connection
//!   (and a thread) forever.
//! - H4: unbounded header size: a header line without CRLF is buffered whole.
//!
//! Every wait is bounded; nothing sleeps to synchronise (barriers, responses and socket read
//! timeouts only).

mod common;

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{listen_script, Server};

/// The handler of every ccserve server here (run by `common::listen_script`).
const HELLO: &str = "res.write('Hello, world!\\n')\nres.close()";

// ------------------------------------------------------------------------------------------------
// Servers under test

/// A stock tiny_http 0.12 server in this process: the accept thread and task pool of
/// `Server::http`, and one thread answering `recv()` with a hello-world response.
struct TinyHttp {
    server: Arc<tiny_http::Server>,
    recv_thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl TinyHttp {
    fn start() -> TinyHttp {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("tiny_http server"));
        let addr = server.server_addr().to_ip().expect("an IP listener");
        let recv_server = server.clone();
        let recv_thread = thread::spawn(move || {
            for request in recv_server.incoming_requests() {
                let _ = request.respond(tiny_http::Response::from_string("Hello, world!\n"));
            }
        });
        TinyHttp {
            server,
            recv_thread: Some(recv_thread),
            addr,
        }
    }
}

impl Drop for TinyHttp {
    fn drop(&mut self) {
        // Ends `incoming_requests()`; the last `Arc` then drops the server (closing its listener).
        self.server.unblock();
        if let Some(t) = self.recv_thread.take() {
            let _ = t.join();
        }
    }
}

/// Serialises the tests of this file: the tiny_http servers share this process, H4 measures its
/// RSS, and H1's bursts should not compete with each other.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ------------------------------------------------------------------------------------------------
// Helpers

/// Reads a response head from `stream` until `deadline`; returns its status code, or `None` if
/// no complete head arrived (timeout, close or error).
fn read_status(stream: &mut TcpStream, deadline: Instant) -> Option<u16> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    status_of(&head)
}

/// The status code in the status line at the start of `bytes`, if there is one.
fn status_of(bytes: &[u8]) -> Option<u16> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.trim().parse().ok()
}

/// Bytes queued in the kernel between the two ends of a loopback TCP connection: unsent at the
/// client (`tx_queue` of client→server) plus unread at the server (`rx_queue` of server→client),
/// from `/proc/net/tcp`. `None` if either entry is missing.
fn queued_between(client: SocketAddr, server: SocketAddr) -> Option<u64> {
    let (client_tx, _) = common::tcp_queues(client, server)?;
    let (_, server_rx) = common::tcp_queues(server, client)?;
    Some(client_tx + server_rx)
}

/// This process's resident set size in KiB (`VmRSS` in `/proc/self/status`).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .expect("VmRSS in /proc/self/status")
}

// ------------------------------------------------------------------------------------------------
// H1: a burst of keep-alive connections

/// Connections in one burst.
const BURST: usize = 32;
/// Time each connection of a burst has to get its response (from the burst's release).
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// One client of a burst: connect, send one keep-alive GET, wait for the response until
/// `deadline`. Returns whether a `200` arrived, and the connection (to be kept open).
fn keep_alive_get(addr: SocketAddr, deadline: Instant) -> (bool, Option<TcpStream>) {
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, ANSWER_WITHIN) else {
        return (false, None);
    };
    let _ = conn.set_nodelay(true);
    let _ = conn.set_write_timeout(Some(ANSWER_WITHIN));
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n";
    if conn.write_all(request).is_err() {
        return (false, Some(conn));
    }
    let answered = read_status(&mut conn, deadline) == Some(200);
    (answered, Some(conn))
}

/// H1 scenario: `BURST` clients, each in its own thread, are released together by a barrier;
/// each opens a connection, sends one keep-alive `GET /` and waits up to `ANSWER_WITHIN` for the
/// response. Every connection stays open until all clients are done (as keep-alive clients
/// would), so a served connection cannot free a server thread for a starved one. Returns how
/// many were answered.
fn keep_alive_burst(addr: SocketAddr) -> usize {
    let release = Arc::new(Barrier::new(BURST));
    let all_done = Arc::new(Barrier::new(BURST));
    let clients: Vec<JoinHandle<bool>> = (0..BURST)
        .map(|_| {
            let (release, all_done) = (release.clone(), all_done.clone());
            // The body cannot panic, so every client reaches both barriers.
            thread::spawn(move || {
                release.wait();
                let deadline = Instant::now() + ANSWER_WITHIN;
                let (answered, conn) = keep_alive_get(addr, deadline);
                all_done.wait();
                drop(conn);
                answered
            })
        })
        .collect();
    clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .filter(|&answered| answered)
        .count()
}

/// Trials against ccserve, each with a fresh server.
const CCSERVE_BURST_TRIALS: usize = 5;
/// Trials against tiny_http, each with a fresh server. The race hits in roughly one trial in two
/// or three on a 2-core machine (most trials here); 10 trials make missing it very unlikely.
const TINY_HTTP_BURST_TRIALS: usize = 10;

#[test]
fn h1_ccserve_serves_a_burst_of_keep_alive_connections() {
    let _serial = serial();
    let mut answered = Vec::new();
    for _ in 0..CCSERVE_BURST_TRIALS {
        let server = Server::start(&listen_script(HELLO), &[]);
        answered.push(keep_alive_burst(server.addr()));
    }
    println!("H1 ccserve: answered within {ANSWER_WITHIN:?} per trial: {answered:?} (of {BURST})");
    assert!(
        answered.iter().all(|&n| n == BURST),
        "every connection of every burst must be answered; answered per trial: {answered:?}"
    );
}

#[test]
#[ignore = "reproduces tiny_http 0.12 pitfall H1; run with --ignored"]
fn h1_tiny_http_starves_a_burst_of_keep_alive_connections() {
    let _serial = serial();
    let mut answered = Vec::new();
    let mut took = Vec::new();
    for _ in 0..TINY_HTTP_BURST_TRIALS {
        let server = TinyHttp::start();
        let started = Instant::now();
        answered.push(keep_alive_burst(server.addr));
        took.push(started.elapsed());
    }
    let starved = answered.iter().filter(|&&n| n < BURST).count();
    println!(
        "H1 tiny_http: answered within {ANSWER_WITHIN:?} per trial: {answered:?} (of {BURST}); \
         {starved} of {TINY_HTTP_BURST_TRIALS} trials starved; trial times {took:.2?}"
    );
    assert!(
        starved > 0,
        "expected at least one trial with fewer than {BURST} answered; got {answered:?}"
    );
}

// ------------------------------------------------------------------------------------------------
// H3: no timeouts

/// How long a stalled client waits to see what the server does.
const STALL_WAIT: Duration = Duration::from_secs(5);

/// What happened to one stalled connection.
#[derive(Debug)]
struct Stalled {
    /// Status of the response that arrived, if any.
    response: Option<u16>,
    /// Whether the server closed the connection (EOF or reset) within `STALL_WAIT`.
    closed: bool,
    /// When the server closed it, or `STALL_WAIT` if it did not.
    after: Duration,
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.response {
            Some(status) => write!(f, "answered {status}, ")?,
            None => write!(f, "no response, ")?,
        }
        if self.closed {
            write!(f, "closed after {:.2?}", self.after)
        } else {
            write!(f, "still open after {:.2?}", self.after)
        }
    }
}

/// Connects, sends `sent` (possibly nothing) and then nothing more; watches the connection for
/// `STALL_WAIT` (a socket read timeout is the wait).
fn stalled_client(addr: SocketAddr, sent: &[u8]) -> Stalled {
    let started = Instant::now();
    let mut conn = TcpStream::connect_timeout(&addr, STALL_WAIT).expect("connect");
    conn.set_write_timeout(Some(STALL_WAIT)).unwrap();
    conn.write_all(sent).expect("send the partial request");
    let deadline = started + STALL_WAIT;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || received.len() > 64 * 1024 {
            break false;
        }
        conn.set_read_timeout(Some(left)).unwrap();
        match conn.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            Err(_) => break true,
        }
    };
    Stalled {
        response: status_of(&received),
        closed,
        after: started.elapsed(),
    }
}

/// H3 scenario: two clients at once, one sending nothing, one sending half a request head
/// (`GET / HTTP/1.1\r\nHost: x\r\n`, no blank line). Returns (idle, half head).
fn stalled_clients(addr: SocketAddr) -> (Stalled, Stalled) {
    let idle = thread::spawn(move || stalled_client(addr, b""));
    let half = stalled_client(addr, b"GET / HTTP/1.1\r\nHost: x\r\n");
    (idle.join().expect("idle client"), half)
}

#[test]
fn h3_ccserve_times_out_stalled_clients() {
    let _serial = serial();
    let server = Server::start(
        &listen_script(HELLO),
        &["--header-timeout", "1", "--keep-alive-timeout", "1"],
    );
    let (idle, half) = stalled_clients(server.addr());
    println!(
        "H3 ccserve (--header-timeout 1 --keep-alive-timeout 1): idle: {idle}; half head: {half}"
    );
    assert_eq!(
        half.response,
        Some(408),
        "half a head must be answered 408: {half:?}"
    );
    assert!(
        half.closed,
        "the connection must be closed after the 408: {half:?}"
    );
    assert!(idle.closed, "an idle connection must be closed: {idle:?}");
    assert_eq!(
        idle.response, None,
        "an idle connection is closed quietly: {idle:?}"
    );
}

#[test]
#[ignore = "reproduces tiny_http 0.12 pitfall H3; run with --ignored"]
fn h3_tiny_http_keeps_stalled_clients_forever() {
    let _serial = serial();
    let server = TinyHttp::start();
    let (idle, half) = stalled_clients(server.addr);
    println!("H3 tiny_http: idle: {idle}; half head: {half}");
    for (what, s) in [("idle", &idle), ("half head", &half)] {
        assert!(
            s.response.is_none() && !s.closed,
            "{what}: expected no response and the connection still open after {STALL_WAIT:?}: {s:?}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// H4: unbounded header size

/// Bytes of `a` sent after `X: `.
const HUGE_HEADER: usize = 4 * 1024 * 1024;
/// How long to wait for a response or close once the bytes are sent (or the send failed).
const HUGE_WAIT: Duration = Duration::from_secs(3);

/// What the huge-header client saw.
#[derive(Debug)]
struct HugeHeader {
    /// Status of the response that arrived, if any.
    response: Option<u16>,
    /// Whether the server closed the connection (EOF or reset).
    closed: bool,
    /// Bytes the client managed to write (the request line included).
    written: usize,
    /// The write error that ended sending early, if any.
    write_error: Option<ErrorKind>,
    /// Bytes still queued in the kernel (unsent or unread) after the wait, while open.
    queued: Option<u64>,
    /// From connect to the end of the observation.
    took: Duration,
}

impl fmt::Display for HugeHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.response {
            Some(status) => write!(f, "answered {status}, ")?,
            None => write!(f, "no response, ")?,
        }
        write!(f, "{} bytes sent", self.written)?;
        if let Some(e) = self.write_error {
            write!(f, " (then {e:?})")?;
        }
        write!(f, ", {}", if self.closed { "closed" } else { "still open" })?;
        if let Some(q) = self.queued {
            write!(f, ", {q} bytes unread in the kernel")?;
        }
        write!(f, ", {:.2?} in all", self.took)
    }
}

/// What the reader thread of `huge_header` saw.
enum Seen {
    Response(Option<u16>),
    Closed,
}

/// H4 scenario: sends `GET / HTTP/1.1\r\nX: ` and `HUGE_HEADER` bytes of `a` with no CRLF, in
/// 64 KiB chunks, while a reader thread watches for a response and for the close. After sending
/// (or once sending failed), waits up to `HUGE_WAIT` for the server to close. `while_open` runs
/// after that wait and before the client closes (to measure the server while it holds the
/// connection).
fn huge_header<T>(addr: SocketAddr, while_open: impl FnOnce() -> T) -> (HugeHeader, T) {
    let started = Instant::now();
    let mut conn = TcpStream::connect_timeout(&addr, HUGE_WAIT).expect("connect");
    conn.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = conn.try_clone().expect("clone the socket");
    let (seen_tx, seen) = mpsc::channel();
    let reader_thread = thread::spawn(move || {
        // Ended by the peer closing, by `shutdown` below, or at worst by this timeout.
        let _ = reader.set_read_timeout(Some(Duration::from_secs(30)));
        let mut received = Vec::new();
        let mut reported = false;
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
            if !reported && received.windows(4).any(|w| w == b"\r\n\r\n") {
                reported = true;
                let _ = seen_tx.send(Seen::Response(status_of(&received)));
            }
        }
        if !reported && !received.is_empty() {
            let _ = seen_tx.send(Seen::Response(status_of(&received)));
        }
        let _ = seen_tx.send(Seen::Closed);
    });

    let mut write_error = None;
    let mut written = 0;
    let head = b"GET / HTTP/1.1\r\nX: ";
    match conn.write_all(head) {
        Ok(()) => {
            written += head.len();
            let chunk = vec![b'a'; 64 * 1024];
            let mut sent = 0;
            while sent < HUGE_HEADER {
                if let Err(e) = conn.write_all(&chunk) {
                    write_error = Some(e.kind());
                    break;
                }
                sent += chunk.len();
                written += chunk.len();
            }
        }
        Err(e) => write_error = Some(e.kind()),
    }

    let (mut response, mut closed) = (None, false);
    let deadline = Instant::now() + HUGE_WAIT;
    while !closed {
        let left = deadline.saturating_duration_since(Instant::now());
        match seen.recv_timeout(left) {
            Ok(Seen::Response(status)) => response = status,
            Ok(Seen::Closed) => closed = true,
            Err(_) => break,
        }
    }
    let queued = match (conn.local_addr(), conn.peer_addr()) {
        (Ok(client), Ok(server)) if !closed => queued_between(client, server),
        _ => None,
    };
    let probe = while_open();
    let _ = conn.shutdown(Shutdown::Both);
    let _ = reader_thread.join();
    let observed = HugeHeader {
        response,
        closed,
        written,
        write_error,
        queued,
        took: started.elapsed(),
    };
    (observed, probe)
}

#[test]
fn h4_ccserve_rejects_a_huge_header() {
    let _serial = serial();
    let server = Server::start(&listen_script(HELLO), &[]);
    let (seen, ()) = huge_header(server.addr(), || ());
    println!("H4 ccserve: {seen}");
    assert!(
        matches!(seen.response, Some(431) | Some(414)),
        "a huge header must be answered 431 (or 414): {seen:?}"
    );
    assert!(
        seen.closed,
        "the connection must be closed after the rejection: {seen:?}"
    );
}

#[test]
#[ignore = "reproduces tiny_http 0.12 pitfall H4; run with --ignored"]
fn h4_tiny_http_buffers_a_huge_header() {
    let _serial = serial();
    let server = TinyHttp::start();
    let before = rss_kib();
    let (seen, after) = huge_header(server.addr, rss_kib);
    let growth = after as i64 - before as i64;
    println!(
        "H4 tiny_http: {seen}; process RSS {before} KiB -> {after} KiB (+{growth} KiB) \
         while the connection was open"
    );
    let total = b"GET / HTTP/1.1\r\nX: ".len() + HUGE_HEADER;
    assert_eq!(seen.response, None, "expected no response: {seen:?}");
    assert!(
        !seen.closed,
        "expected the connection to stay open: {seen:?}"
    );
    assert_eq!(
        seen.written, total,
        "expected every byte to be accepted: {seen:?}"
    );
    if let Some(queued) = seen.queued {
        assert!(
            queued < 64 * 1024,
            "expected the server to have read (nearly) everything, {queued} bytes still queued"
        );
    }
    assert!(
        growth > (HUGE_HEADER / 1024 / 2) as i64,
        "expected the RSS to grow by about {} KiB, it grew {growth} KiB",
        HUGE_HEADER / 1024
    );
}
