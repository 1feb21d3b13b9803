//! Faults on the script's side and resource use over many connections: defined behaviour, no
//! request left unanswered, nothing leaked.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{connect, get, read_response, Server, WAIT};

/// A script that is busy (never pulls events) for a while: its requests are answered `503`
/// when the response timeout passes, not left hanging and not an empty `200`.
#[test]
fn requests_to_a_script_that_never_pulls_events_get_503_at_the_response_timeout() {
    let server = Server::start(
        "local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         local t = os.clock()\n\
         while os.clock() - t < 4 do end -- busy, never yields\n\
         print('DONE')\n",
        &["--response-timeout", "1"],
    );
    let started = Instant::now();
    let resp = get(server.port, "/");
    assert_eq!(resp.status, 503, "{}", resp.status_line);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
}

/// `os.queueEvent` in a loop that never pulls: a clear error, not unbounded memory.
#[test]
fn queueing_events_in_a_tight_loop_fails_clearly() {
    let mut server = Server::spawn(
        "local ok, err = pcall(function() for i = 1, 1e9 do os.queueEvent('x', i) end end)\n\
         print('OK ' .. tostring(ok))\n\
         print('ERR ' .. tostring(err))\n",
        &["--max-queued-events", "5000"],
        &[],
    );
    assert_eq!(
        server.line_starting("OK ", WAIT).as_deref(),
        Some("OK false")
    );
    assert_eq!(
        server.line_starting("ERR ", WAIT).as_deref(),
        Some("ERR Too many events queued (5000); pull events before queueing more")
    );
    assert!(server.wait_exit(WAIT).is_some_and(|s| s.success()));
}

/// An error inside a `parallel` coroutine ends the script like any uncaught error, and the
/// request it was handling is answered `500`.
#[test]
fn error_inside_a_parallel_coroutine_answers_500_and_exits_1() {
    let mut server = Server::start(
        "local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         parallel.waitForAny(function()\n\
           local _, _, req, res = os.pullEvent('http_request')\n\
           error('boom in a coroutine')\n\
         end, function() while true do os.pullEvent('never') end end)\n",
        &[],
    );
    let resp = get(server.port, "/");
    assert_eq!(resp.status, 500, "{}", resp.status_line);
    let status = server.wait_exit(WAIT).expect("script ended");
    assert_eq!(status.code(), Some(1));
    assert!(server.stderr_when_closed().contains("boom in a coroutine"));
}

fn proc_count(pid: u32, what: &str) -> usize {
    match what {
        "fd" => std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0),
        _ => std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Threads:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0),
    }
}

/// Waits (bounded) until `f()` is at most `limit`; returns the last value seen.
fn settles_to(limit: usize, f: impl Fn() -> usize) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = f();
        if v <= limit || Instant::now() >= deadline {
            return v;
        }
        // Connection threads end asynchronously after their client closed; re-check shortly.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// 10,000 connect/request/disconnect cycles leave no file descriptor or thread behind.
#[test]
fn ten_thousand_connection_cycles_leak_no_fds_or_threads() {
    let server = Server::start(&common::listen_script("res.write('ok')\nres.close()"), &[]);
    let pid = server.pid();
    // Before any connection: the listener, the Lua thread, the signal thread.
    let fds = proc_count(pid, "fd");
    let threads = proc_count(pid, "threads");
    assert!(fds > 0 && threads > 0, "cannot read /proc/{pid}");
    for i in 0..10_000 {
        let mut s = connect(server.port);
        if i % 2 == 0 {
            // A full request, then the client closes.
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let resp = read_response(&mut s, false).expect("response");
            assert_eq!(resp.text(), "ok");
        } else {
            // Connect and vanish without a request.
        }
        drop(s);
    }
    let fds_after = settles_to(fds, || proc_count(pid, "fd"));
    let threads_after = settles_to(threads, || proc_count(pid, "threads"));
    assert!(fds_after <= fds, "fds: {fds} before, {fds_after} after");
    assert!(
        threads_after <= threads,
        "threads: {threads} before, {threads_after} after"
    );
    // Still serving.
    let mut s = connect(server.port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.ends_with("ok"), "{all}");
}

/// Beyond `--max-connections`, a connection is answered `503` and closed; the others are served.
#[test]
fn connections_beyond_the_limit_get_503() {
    let server = Server::start(
        &common::listen_script("res.write('ok')\nres.close()"),
        &["--max-connections", "2"],
    );
    // Two idle connections hold both places (accepted in order by the one accept thread).
    let mut first = connect(server.port);
    let _second = connect(server.port);
    let mut third = connect(server.port);
    let resp = read_response(&mut third, false).expect("an answer for the third");
    assert_eq!(resp.status, 503, "{}", resp.status_line);
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut first, false).expect("served").text(),
        "ok"
    );
}

/// A body that does not arrive within `--body-timeout` is answered `408`.
#[test]
fn a_body_that_stops_arriving_gets_408() {
    let server = Server::start(
        &common::listen_script("res.write(req.readAll())\nres.close()"),
        &["--body-timeout", "1"],
    );
    let mut s = connect(server.port);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let started = Instant::now();
    let resp = read_response(&mut s, false).expect("an answer");
    assert_eq!(resp.status, 408, "{}", resp.status_line);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Ctrl+C while a request waits for the script: the script ends (uncaught `Terminated`) and the
/// request is answered `500` rather than dropped.
#[test]
fn interrupt_answers_requests_in_flight() {
    let mut server = Server::start(
        "local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         local _, _, req, res = os.pullEvent('http_request')\n\
         print('HOLDING')\n\
         os.pullEvent('never')\n",
        &[],
    );
    let mut s = connect(server.port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    server
        .line_starting("HOLDING", WAIT)
        .expect("request reached the script");
    server.interrupt();
    let resp = read_response(&mut s, false).expect("an answer");
    assert_eq!(resp.status, 500, "{}", resp.status_line);
    let status = server.wait_exit(WAIT).expect("exited");
    assert_eq!(status.code(), Some(130));
}
