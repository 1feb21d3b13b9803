//! Faults on the script's side and resource use over many connections: defined behaviour, no
//! request left unanswered, nothing leaked.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{
    closed_within, connect, fds_of, get, read_response, settles_to, threads_of, Server, WAIT,
};

/// A script that is busy (never pulls events) for a while: its requests are answered `503`
/// when the response timeout passes, not left hanging and not an empty `200`.
#[test]
fn requests_to_a_script_that_never_pulls_events_get_503_at_the_response_timeout() {
    let server = Server::start(
        "local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         local t = os.clock()\n\
         while os.clock() - t < 10 do end -- busy, never yields\n\
         print('DONE')\n",
        &["--response-timeout", "1"],
    );
    let started = Instant::now();
    let resp = get(server.port, "/");
    assert_eq!(resp.status, 503, "{}", resp.status_line);
    let took = started.elapsed();
    // The response timeout (1 s), well before the script would be done (10 s of CPU).
    assert!(took < Duration::from_secs(6), "answered after {took:?}");
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

/// 10,000 connect/request/disconnect cycles leave no file descriptor or thread behind.
#[test]
fn ten_thousand_connection_cycles_leak_no_fds_or_threads() {
    let server = Server::start(&common::listen_script("res.write('ok')\nres.close()"), &[]);
    let pid = server.pid();
    // Before any connection: the listener, the Lua thread, the signal thread.
    let fds = fds_of(pid);
    let threads = threads_of(pid);
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
    let fds_after = settles_to(fds, || fds_of(pid));
    let threads_after = settles_to(threads, || threads_of(pid));
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

/// Ctrl+C or SIGTERM while a request waits for the script: the script ends (uncaught
/// `Terminated`) and the request is answered `500` rather than dropped; the exit status is 130.
fn signal_answers_requests_in_flight(signal: fn(&Server)) {
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
    signal(&server);
    let resp = read_response(&mut s, false).expect("an answer");
    assert_eq!(resp.status, 500, "{}", resp.status_line);
    let status = server.wait_exit(WAIT).expect("exited");
    assert_eq!(status.code(), Some(130));
    assert!(closed_within(&mut s, WAIT), "socket left open");
}

#[test]
fn interrupt_answers_requests_in_flight() {
    signal_answers_requests_in_flight(Server::interrupt);
}

#[test]
fn sigterm_answers_requests_in_flight() {
    signal_answers_requests_in_flight(Server::terminate);
}

/// A script that ends (returns) while it still holds an open response: the client gets `500`.
#[test]
fn script_ending_with_a_response_open_answers_it_500() {
    let mut server = Server::start(
        "local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         local _, _, req, res = os.pullEvent('http_request')\n\
         kept = res\n\
         res.write('never sent')\n",
        &[],
    );
    let resp = get(server.port, "/");
    assert_eq!(resp.status, 500, "{}", resp.status_line);
    assert_eq!(server.wait_exit(WAIT).expect("exited").code(), Some(0));
}

/// After the response timeout answered a request for the script, using that response handle
/// raises `attempt to use a closed file` (CraftOS-PC crashes here).
#[test]
fn handle_used_after_the_response_timeout_raises_closed_file() {
    let server = Server::start(
        "local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         local _, _, _, late = os.pullEvent('http_request')\n\
         late.write('buffered')\n\
         local _, _, _, res = os.pullEvent('http_request')\n\
         local ok, err = pcall(late.write, 'too late')\n\
         res.write(tostring(ok) .. ' ' .. tostring(err))\n\
         res.close()\n\
         os.pullEvent('never')\n",
        &["--response-timeout", "1"],
    );
    let first = get(server.port, "/late");
    assert_eq!(first.text(), "buffered");
    assert_eq!(
        get(server.port, "/check").text(),
        "false attempt to use a closed file"
    );
}

/// A client that vanishes while a large response is being sent to it costs nothing but that
/// response: the next client is served.
#[test]
fn client_vanishing_mid_response_leaves_the_listener_serving() {
    let server = Server::start(
        &common::listen_script(
            "if req.getURL() == '/big' then res.write(string.rep('y', 8 * 1024 * 1024))\n\
             else res.write('small') end\n\
             res.close()",
        ),
        &[],
    );
    for _ in 0..5 {
        let mut big = connect(server.port);
        big.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut some = [0u8; 4096];
        assert!(big.read(&mut some).unwrap() > 0, "response started");
        drop(big);
        assert_eq!(get(server.port, "/small").text(), "small");
    }
}

/// `http.removeListener` closes the listener's idle keep-alive connections and their threads end,
/// instead of living on until the keep-alive timeout.
#[test]
fn removing_a_listener_closes_its_connections_and_joins_their_threads() {
    let server = Server::start(
        "local ctl = http.addListener(0)\n\
         local main = http.addListener(0)\n\
         print('LISTENING ' .. ctl)\n\
         print('MAIN ' .. main)\n\
         while true do\n\
           local _, port, req, res = os.pullEvent('http_request')\n\
           if port == ctl then http.removeListener(main) end\n\
           res.write(tostring(port))\n\
           res.close()\n\
         end\n",
        &["--keep-alive-timeout", "600"],
    );
    let main: u16 = server
        .line_starting("MAIN ", WAIT)
        .expect("MAIN line")
        .trim_start_matches("MAIN ")
        .parse()
        .expect("a port number");
    let mut conns: Vec<_> = (0..8)
        .map(|_| {
            let mut s = connect(main);
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let resp = read_response(&mut s, false).expect("served");
            assert_eq!(resp.text(), main.to_string());
            s
        })
        .collect();
    let pid = server.pid();
    let threads = threads_of(pid);
    // The answer is written after removeListener returned.
    assert_eq!(get(server.port, "/remove").text(), server.port.to_string());
    // removeListener returns once its connection threads have finished their work; the OS
    // threads themselves exit moments later (on musl a little after the return), so poll,
    // bounded far below the 600 s keep-alive timeout they would otherwise live for. 8 connection
    // threads and the accept thread go; the control request's own thread may still be finishing.
    let after = settles_to(threads - 8, || threads_of(pid));
    assert!(
        after + 8 <= threads,
        "threads: {threads} with 8 idle connections, {after} after removeListener"
    );
    let started = Instant::now();
    for (i, conn) in conns.iter_mut().enumerate() {
        assert!(closed_within(conn, WAIT), "connection {i} left open");
    }
    assert!(started.elapsed() < WAIT);
}

/// A full event queue makes producers wait: with room for two events and a script that is busy,
/// twenty requests queue up behind it, and every one is answered once the script pulls again.
#[test]
fn a_full_event_queue_makes_producers_wait_and_drops_nothing() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("backpressure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.to_str().unwrap().to_string();
    let server = Server::start(
        "local port = http.addListener(0)\n\
         print('LISTENING ' .. port)\n\
         local _, _, req, res = os.pullEvent('http_request')\n\
         print('HOLDING')\n\
         while not fs.exists('go') do end -- busy: pulls no events\n\
         res.write(req.getURL()) res.close()\n\
         while true do\n\
           local _, _, req, res = os.pullEvent('http_request')\n\
           res.write(req.getURL()) res.close()\n\
         end\n",
        &["--event-queue", "2", "--root", &root, "-vv"],
    );
    let mut first = connect(server.port);
    first
        .write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    server.line_starting("HOLDING", WAIT).expect("HOLDING line");
    let mut others: Vec<_> = (0..20)
        .map(|i| {
            let mut s = connect(server.port);
            let req = format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n");
            s.write_all(req.as_bytes()).unwrap();
            s
        })
        .collect();
    // Two events fit; the producers of the others find the queue full and wait.
    server
        .stderr_line_containing("event queue full", WAIT)
        .expect("a producer waited for room");
    std::fs::write(dir.join("go"), b"").unwrap();
    let resp = read_response(&mut first, false).expect("first answered");
    assert_eq!(resp.text(), "/first");
    for (i, s) in others.iter_mut().enumerate() {
        let resp = read_response(s, false).expect("answered");
        assert_eq!(resp.status, 200, "request {i}: {}", resp.status_line);
        assert_eq!(resp.text(), format!("/{i}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writing 100 MB to a response: it is buffered (memory grows by about its size while it is being
/// sent), sent whole with a `Content-Length`, and the Lua thread does not wait for the client to
/// read it: another client is served meanwhile.
#[test]
fn a_hundred_megabyte_response_is_sent_whole_without_blocking_the_script() {
    const MIB: usize = 1024 * 1024;
    let server = Server::start(
        &common::listen_script(
            "if req.getURL() == '/big' then\n\
               local chunk = string.rep('x', 1024 * 1024)\n\
               for i = 1, 100 do res.write(chunk) end\n\
             else\n\
               res.write('small')\n\
             end\n\
             res.close()",
        ),
        &[],
    );
    let mut big = connect(server.port);
    big.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Read only the head for now; the body stays unread in the socket buffers.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(big.read(&mut byte).unwrap(), 1, "head cut short");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", 100 * MIB)),
        "{head}"
    );
    // The script is not stuck behind the unread 100 MB.
    assert_eq!(get(server.port, "/small").text(), "small");
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match big.read(&mut buf).unwrap() {
            0 => break,
            n => {
                assert!(buf[..n].iter().all(|&b| b == b'x'), "corrupt body");
                total += n;
            }
        }
    }
    assert_eq!(total, 100 * MIB);
}

/// Started with a soft limit of 64 open files (and a hard limit of 4,096), the binary raises its
/// soft limit to the hard one, so 100 connections held open at once (each a socket and, on
/// Linux, an `eventfd` for its thread) are all answered, not left waiting behind failed accepts.
#[cfg(target_os = "linux")]
#[test]
fn more_connections_than_the_inherited_soft_file_limit_are_served() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let script = common::script_file(&common::listen_script(
        "res.write('ok ' .. req.getURL())\nres.close()",
    ));
    let mut child = Command::new("prlimit")
        .arg("--nofile=64:4096")
        .arg(common::bin())
        .args(["--bind", "127.0.0.1"])
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ccserve under prlimit");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let child = Kill(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read LISTENING");
    let port: u16 = line
        .trim()
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("a port");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.0.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let soft: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(soft, ["4096", "4096"], "{open_files}");
    let mut streams: Vec<std::net::TcpStream> = (0..100).map(|_| common::connect(port)).collect();
    for (i, s) in streams.iter_mut().enumerate() {
        s.write_all(format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
    }
    for (i, s) in streams.iter_mut().enumerate() {
        let resp = common::read_response(s, false)
            .unwrap_or_else(|| panic!("connection {i}: no response"));
        assert_eq!(resp.text(), format!("ok /{i}"));
    }
}
