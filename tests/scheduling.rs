//! The socket threads run under `SCHED_BATCH` (src/sched.rs), the Lua thread under the default
//! policy, and `--no-batch-threads` leaves every thread under the default policy. Read from
//! `/proc/PID/task/TID/stat` while a connection is open, so its threads exist. And the Lua
//! thread's busy polling (src/busy_poll.rs) ends when requests stop: an idle server uses no CPU.
#![cfg(target_os = "linux")]

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::{listen_script, read_response, Server};
use tungstenite::{Message, WebSocket};

const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;

/// The scheduling policy of every thread of `pid`, by thread name.
fn policies(pid: u32) -> Vec<(String, u32)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/PID/task");
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Field 41 (policy); fields from 3 on follow the `)` that ends the command name.
        let after = &stat[stat.rfind(')').expect("a stat line") + 1..];
        let policy = after
            .split_whitespace()
            .nth(41 - 3)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("no policy field in {stat}"));
        out.push((comm.trim().to_string(), policy));
    }
    out
}

/// Policies of the threads whose name starts with `prefix`; panics if there is none.
fn policies_of(all: &[(String, u32)], prefix: &str) -> Vec<u32> {
    let found: Vec<u32> = all
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|&(_, p)| p)
        .collect();
    assert!(!found.is_empty(), "no thread named {prefix}*: {all:?}");
    found
}

/// Opens a keep-alive connection and completes one request on it (its thread now exists).
fn open_http(port: u16) -> TcpStream {
    let mut stream = common::connect(port);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send a request");
    let response = read_response(&mut stream, false).expect("a response");
    assert_eq!(response.status, 200);
    stream
}

fn http_policies(extra: &[&str]) -> Vec<(String, u32)> {
    let server = Server::start(&listen_script("res.write('ok') res.close()"), extra);
    let _open = open_http(server.port);
    policies(server.pid())
}

#[test]
fn http_connection_threads_are_batch_and_the_lua_thread_is_not() {
    let all = http_policies(&[]);
    assert_eq!(policies_of(&all, "ccserve-conn"), [SCHED_BATCH], "{all:?}");
    // The main thread runs the Lua VM; it keeps the binary's name.
    let lua = all
        .iter()
        .find(|(name, _)| name == "ccserve")
        .expect("the main thread");
    assert_eq!(lua.1, SCHED_OTHER, "{all:?}");
}

#[test]
fn no_batch_threads_leaves_every_thread_under_the_default_policy() {
    let all = http_policies(&["--no-batch-threads"]);
    assert!(
        all.iter().all(|&(_, p)| p == SCHED_OTHER),
        "expected SCHED_OTHER everywhere: {all:?}"
    );
    assert_eq!(policies_of(&all, "ccserve-conn").len(), 1);
}

#[test]
fn websocket_reader_and_writer_threads_are_batch() {
    let server = Server::start(
        "local server = assert(http.websocketServer(0))\n\
         print('LISTENING ' .. server.port)\n\
         while true do\n\
           local event, port, handle = os.pullEvent()\n\
           if event == 'websocket_server_connect' then handle.send('hi') end\n\
         end\n",
        &[],
    );
    let stream = common::connect(server.port);
    let (mut ws, _): (WebSocket<TcpStream>, _) =
        tungstenite::client::client(format!("ws://127.0.0.1:{}/", server.port), stream)
            .expect("websocket handshake");
    // The greeting proves the script saw the connection: both threads are running.
    assert_eq!(ws.read().expect("the greeting"), Message::text("hi"));
    let all = policies(server.pid());
    assert_eq!(
        policies_of(&all, "ccserve-ws-read"),
        [SCHED_BATCH],
        "{all:?}"
    );
    assert_eq!(
        policies_of(&all, "ccserve-ws-writ"),
        [SCHED_BATCH],
        "{all:?}"
    );
    let lua = all
        .iter()
        .find(|(name, _)| name == "ccserve")
        .expect("main");
    assert_eq!(lua.1, SCHED_OTHER, "{all:?}");
}

/// CPU time (user + system) the process `pid` has used so far, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let after = &stat[stat.rfind(')').expect("a stat line") + 1..];
    let field = |n: usize| -> u64 {
        after
            .split_whitespace()
            .nth(n - 3)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("no field {n} in {stat}"))
    };
    field(14) + field(15)
}

/// Back-to-back keep-alive requests make the Lua thread look for the next one before sleeping;
/// once they stop, it must go to sleep and stay asleep. A thread still looking would use most of
/// a core over the idle second measured here (on a loaded machine still a third of one); an
/// asleep one uses none.
fn idle_after_back_to_back_requests(extra: &[&str]) -> u64 {
    let server = Server::start(&listen_script("res.write('ok') res.close()"), extra);
    let mut stream = common::connect(server.port);
    for n in 0..500 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send a request");
        let response =
            read_response(&mut stream, false).unwrap_or_else(|| panic!("request {n}: no response"));
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"ok"[..])
        );
    }
    let before = cpu_ticks(server.pid());
    // A measurement window, not a wait for something to happen.
    std::thread::sleep(std::time::Duration::from_secs(1));
    cpu_ticks(server.pid()) - before
}

#[test]
fn busy_polling_ends_when_requests_stop() {
    let idle = idle_after_back_to_back_requests(&[]);
    assert!(idle <= 10, "an idle server used {idle}0 ms of CPU in 1 s");
    let idle = idle_after_back_to_back_requests(&["--busy-poll", "10000"]);
    assert!(
        idle <= 10,
        "an idle server (--busy-poll 10000) used {idle}0 ms of CPU in 1 s"
    );
    let idle = idle_after_back_to_back_requests(&["--busy-poll", "0"]);
    assert!(
        idle <= 10,
        "an idle server (--busy-poll 0) used {idle}0 ms of CPU in 1 s"
    );
}
