//! Memory of a ccserve process: resident set size (`VmRSS`) and thread count (`Threads`) from
//! `/proc/PID/status`, in four cases, each in a fresh ccserve process:
//! - `examples/hello.lua` idle;
//! - the same with 200 idle keep-alive HTTP connections (each sent one `GET` and read its whole
//!   response, then stays open);
//! - `examples/ws_echo.lua` idle;
//! - the same with 200 idle WebSocket clients (each sent one message and got its echo, then
//!   stays open).
//!
//! Before each reading the server has served one request (or echoed one message) on a connection
//! that was then closed, so first-use allocations are not counted as per-connection memory. The
//! idle reading of the with-connections case is taken in the same process, after that warm-up and
//! before the 200 connections, and the delta and KiB per connection are against it. Readings are
//! taken once the thread count is exactly idle + 200 × (threads per connection), as the maximum of
//! a few samples, and the thread count is checked again afterwards to prove every connection was
//! still open (ccserve closes idle keep-alive connections after 15 s by default; the reading is
//! taken well within that).
//!
//! Run: `cargo bench --bench memory` (or `bash bench/run.sh`). Results: stdout and
//! `target/bench-results/memory.md`.

mod common;

use common::{Ccserve, ProcStatus, WAIT};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

const CONNECTIONS: u64 = 200;

/// A connection the server is holding open: raw HTTP keep-alive or WebSocket.
enum Held {
    #[allow(dead_code)] // held only to keep the socket open
    Http(TcpStream),
    #[allow(dead_code)]
    Ws(Box<WebSocket<TcpStream>>),
}

#[derive(Clone, Copy)]
enum Kind {
    Http,
    Ws,
}

/// Opens one connection of `kind` to `port`, does one exchange, and returns it still open.
fn open(kind: Kind, port: u16) -> Held {
    match kind {
        Kind::Http => {
            let mut stream = common::connect(port);
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .expect("send a keep-alive GET");
            let head = read_response(&mut stream);
            assert!(
                head.starts_with("HTTP/1.1 200")
                    && !head.to_ascii_lowercase().contains("connection: close"),
                "expected a 200 keep-alive response, got:\n{head}"
            );
            Held::Http(stream)
        }
        Kind::Ws => {
            let stream = common::connect(port);
            let (mut ws, _) =
                tungstenite::client::client(format!("ws://127.0.0.1:{port}/"), stream)
                    .unwrap_or_else(|e| panic!("websocket handshake with 127.0.0.1:{port}: {e}"));
            ws.send(Message::text("x"))
                .expect("send a websocket message");
            loop {
                match ws.read().expect("read the echo within the timeout") {
                    Message::Text(t) if t.as_str() == "x" => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                    other => panic!("unexpected message instead of the echo: {other:?}"),
                }
            }
            Held::Ws(Box::new(ws))
        }
    }
}

/// Reads one whole HTTP response with a `Content-Length` body; returns its head.
fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).expect("read the response head");
        assert!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length in:\n{head}"));
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).expect("read the response body");
        assert!(n > 0, "connection closed before the response body");
        buf.extend_from_slice(&chunk[..n]);
    }
    head
}

/// The maximum RSS over a few samples, with the thread count of the last.
fn sample(server: &Ccserve) -> ProcStatus {
    let mut max = server.status();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(100));
        let s = server.status();
        max = ProcStatus {
            rss_kib: max.rss_kib.max(s.rss_kib),
            rss_anon_kib: max.rss_anon_kib.max(s.rss_anon_kib),
            threads: s.threads,
        };
    }
    max
}

/// One row of the table.
struct Row {
    case: String,
    status: ProcStatus,
    /// Same-process idle reading, for the with-connections cases.
    idle: Option<ProcStatus>,
}

/// Starts a fresh ccserve with `script`, warms it up with one closed connection, and returns the
/// idle reading; with `connections`, then opens that many idle connections and reads again.
fn measure(script: &str, kind: Kind, connections: u64) -> (ProcStatus, Option<ProcStatus>) {
    let server = Ccserve::start(script);
    let path = format!("/proc/{}/status", server.pid());
    drop(open(kind, server.port));
    let idle_threads = common::settled_threads(&path);
    let idle = sample(&server);
    if connections == 0 {
        return (idle, None);
    }
    // One connection first, to learn how many threads a connection costs.
    let mut held = vec![open(kind, server.port)];
    let per_connection = common::wait_threads(&path, WAIT, |t| t > idle_threads)
        .map(|t| t - idle_threads)
        .unwrap_or_else(|t| panic!("no thread for a new connection ({t} threads)"));
    let started = Instant::now();
    held.extend((1..connections).map(|_| open(kind, server.port)));
    let expected = idle_threads + connections * per_connection;
    if let Err(t) = common::wait_threads(&path, WAIT, |t| t == expected) {
        panic!("expected {expected} threads with {connections} open connections, have {t}");
    }
    let loaded = sample(&server);
    let still = server.status().threads;
    assert_eq!(
        still, expected,
        "connections closed during the reading ({still} threads, expected {expected})"
    );
    eprintln!(
        "{script}: {connections} connections open and read in {:.1} s, {per_connection} thread(s) each",
        started.elapsed().as_secs_f64()
    );
    drop(held);
    (idle, Some(loaded))
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn main() {
    let machine = common::machine();
    let mut rows = Vec::new();
    for (script, kind, what) in [
        (
            "examples/hello.lua",
            Kind::Http,
            "idle keep-alive HTTP connections",
        ),
        ("examples/ws_echo.lua", Kind::Ws, "idle WebSocket clients"),
    ] {
        let (idle, _) = measure(script, kind, 0);
        rows.push(Row {
            case: format!("`{script}` idle"),
            status: idle,
            idle: None,
        });
        let (idle, loaded) = measure(script, kind, CONNECTIONS);
        rows.push(Row {
            case: format!("`{script}` + {CONNECTIONS} {what}"),
            status: loaded.expect("a with-connections reading"),
            idle: Some(idle),
        });
    }

    let mut md = String::new();
    let _ = writeln!(md, "### Memory (RSS) of the ccserve process\n");
    let _ = writeln!(
        md,
        "`VmRSS` and `Threads` from `/proc/PID/status`; a fresh ccserve (release build) per case, \
         after one warm-up request on a closed connection. Machine: {machine}. {}.\n",
        common::binary()
    );
    let _ = writeln!(
        md,
        "| case | RSS MiB | of which anonymous MiB | threads | Δ RSS vs idle (same process) MiB | KiB per connection |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for row in &rows {
        let (delta, per) = match row.idle {
            Some(idle) => {
                let delta = row.status.rss_kib.saturating_sub(idle.rss_kib);
                (
                    format!(
                        "{} (idle {} MiB, {} threads)",
                        mib(delta),
                        mib(idle.rss_kib),
                        idle.threads
                    ),
                    format!("{:.1}", delta as f64 / CONNECTIONS as f64),
                )
            }
            None => ("–".to_string(), "–".to_string()),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {delta} | {per} |",
            row.case,
            mib(row.status.rss_kib),
            mib(row.status.rss_anon_kib),
            row.status.threads
        );
    }
    let _ = writeln!(
        md,
        "\nThread stacks are virtual memory; only the pages a thread touches count in RSS. The \
         anonymous part is the process's own (heap, Lua state, touched stack pages); the rest of \
         RSS is file pages (ccserve's code and, in a glibc build, libc's and libm's), which the \
         kernel shares with every other process mapping the same files."
    );
    common::publish("memory", &md);
}
