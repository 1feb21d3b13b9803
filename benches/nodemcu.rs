//! ccserve's NodeMCU API (`--nodemcu`, `require "httpserver"`, `src/nodemcu/`) against its own
//! CraftOS API, in one invocation.
//!
//! - **HTTP hello world**, driven by `wrk --latency` at `-t1 -c1`, `-t2 -c32` and `-t2 -c256`
//!   (keep-alive), two servers: ccserve running `examples/nodemcu_hello.lua` with `--nodemcu`
//!   (the NodeMCU API: `httpserver.createServer`) and ccserve running `examples/hello.lua` (the
//!   CraftOS API: `http.listen`, the reference). Both are checked to answer `GET /` with 200 and
//!   `Hello, world!\n` first. For each connection count and each round the two run one after the
//!   other, the order alternating every round. Reported: median req/s and every round's, median
//!   p50 / p99, socket errors and non-2xx responses (summed over rounds), the peak thread count of
//!   the server during each run (sampled every 20 ms), and the server's CPU time per request:
//!   user + system time of the whole server process (`utime` + `stime` of `/proc/PID/stat`, all
//!   threads) over the wrk run, divided by the requests wrk completed; then the ratios NodeMCU
//!   API / CraftOS API for req/s and CPU per request.
//!
//! Either server exiting, or wrk failing, fails the bench.
//!
//! Run: `cargo bench --bench nodemcu` (or `bash bench/run.sh` for all benches). Needs `wrk`.
//! Knobs: `CCSERVE_BENCH_SECONDS` (wrk `-d`, default 5), `CCSERVE_BENCH_ROUNDS` (default 3),
//! `CCSERVE_BENCH_BIN`. Results: stdout and `target/bench-results/nodemcu.md`.

mod common;

use common::wrk::{row_cells, WrkSample};
use common::{median_duration, median_of, ratio, Ccserve};
use std::fmt::Write as _;

const CONNECTIONS: [u32; 3] = [1, 32, 256];

/// The servers compared: table label, script, ccserve flags. The first is the one under test,
/// the second the reference of the ratios.
const SERVERS: [(&str, &str, &[&str]); 2] = [
    (
        "ccserve, NodeMCU API (`--nodemcu nodemcu_hello.lua`)",
        "examples/nodemcu_hello.lua",
        &["--nodemcu"],
    ),
    (
        "ccserve, CraftOS API (`hello.lua`)",
        "examples/hello.lua",
        &[],
    ),
];

/// Runs wrk against `server`, measuring its CPU time over the run; panics if it has exited.
fn sample(server: &mut Ccserve, connections: u32, seconds: u64) -> WrkSample {
    let s = WrkSample::measure(server.pid(), server.port, connections, seconds);
    if let Some(why) = server.exited() {
        panic!("{why} during the c={connections} run");
    }
    s
}

/// Starts ccserve on `script` with `flags` and checks one `GET /` (`Connection: close`) answers
/// 200 with the hello body.
fn start(script: &str, flags: &[&str]) -> Ccserve {
    let server = Ccserve::start_with_flags(flags, script, &[]);
    let response = common::http_get_close(server.port);
    assert!(
        response.starts_with("HTTP/1.1 200") && response.contains("Hello, world!\n"),
        "ccserve {} {script}: unexpected response to GET /: {response:?}",
        flags.join(" ")
    );
    server
}

fn main() {
    common::wrk::require();
    let seconds = common::env_knob("CCSERVE_BENCH_SECONDS", 5);
    let rounds = common::rounds();
    let machine = common::machine();

    let mut servers = SERVERS.map(|(_, script, flags)| start(script, flags));
    // results[server][connection count]: one sample per round.
    let mut results: [Vec<Vec<WrkSample>>; 2] =
        std::array::from_fn(|_| CONNECTIONS.iter().map(|_| Vec::new()).collect());
    for (c, &connections) in CONNECTIONS.iter().enumerate() {
        for round in 0..rounds {
            for i in 0..2 {
                let k = (round + i) % 2;
                let s = sample(&mut servers[k], connections, seconds);
                eprintln!(
                    "{}",
                    s.progress(&format!(
                        "c={connections} round {}/{rounds} {}",
                        round + 1,
                        SERVERS[k].0
                    ))
                );
                results[k][c].push(s);
            }
        }
    }
    drop(servers);
    let load_end = common::load_average();

    // ---- report ----
    let mut md = String::new();
    let _ = writeln!(md, "### NodeMCU API vs CraftOS API (ccserve)\n");
    let _ = writeln!(
        md,
        "Machine: {machine}; load average at end {load_end}. {}. The servers and wrk share the \
         machine's cores.\n",
        common::binary()
    );
    let _ = writeln!(
        md,
        "#### HTTP hello world\n\n`wrk --latency -t1 -c1` / `-t2 -c32` / `-t2 -c256`, {seconds} s \
         per run, {rounds} rounds (each round runs the two servers one after the other, \
         alternating which goes first); medians over rounds. CPU = the server process's user + \
         system time over the run (`/proc/PID/stat`, all threads) / requests completed.\n"
    );
    let _ = writeln!(
        md,
        "| connections | server | req/s | req/s per round | p50 / p99 ms | server CPU µs / request | peak threads (per round) | socket errors | non-2xx |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for (c, &connections) in CONNECTIONS.iter().enumerate() {
        for (k, (label, _, _)) in SERVERS.iter().enumerate() {
            let _ = writeln!(
                md,
                "| {connections} | {label} | {} |",
                row_cells(&results[k][c])
            );
        }
    }
    let _ = writeln!(
        md,
        "\n| connections | req/s: NodeMCU API / CraftOS API | CPU per request: NodeMCU API / CraftOS API |"
    );
    let _ = writeln!(md, "|---|---|---|");
    for (c, &connections) in CONNECTIONS.iter().enumerate() {
        let rps = |k: usize| Some(median_of(&results[k][c], |s| s.wrk.requests_per_sec));
        let cpu =
            |k: usize| Some(median_duration(&results[k][c], |s| s.cpu_per_request).as_secs_f64());
        let _ = writeln!(
            md,
            "| {connections} | {} | {} |",
            ratio(rps(0), rps(1)),
            ratio(cpu(0), cpu(1)),
        );
    }
    common::publish("nodemcu", &md);
}
