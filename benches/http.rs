//! HTTP hello-world throughput and latency: ccserve running `examples/hello.lua` against a raw
//! tiny_http 0.12 baseline (no Lua) in the same invocation, both driven by `wrk`.
//!
//! The baseline is tiny_http's stock README example, in this process
//! (`benches/common/baseline.rs`): `Server::http`, one thread looping over `incoming_requests()`
//! and answering `200 Hello, world!\n` with `Content-Type: text/plain` (the bytes
//! `examples/hello.lua` sends). For each connection count
//! (1, 32, 256) and each round the two servers are run one after the other with
//! `wrk --latency`, alternating which goes first. The report has the median requests/s of each,
//! the ratio ccserve / baseline, median p50 / p99 latency, socket errors, non-2xx responses, and
//! the peak thread count of each server during its runs (ccserve and tiny_http use one thread
//! per connection, so a peak well under the connection count means connections went unserved).
//!
//! Run: `cargo bench --bench http` (or `bash bench/run.sh` for all benches). Needs `wrk`
//! (`apt-get install wrk`). Knobs: `CCSERVE_BENCH_SECONDS` (wrk `-d`, default 5),
//! `CCSERVE_BENCH_ROUNDS` (default 3). Results: stdout and `target/bench-results/http.md`.

mod common;

use common::baseline::TinyHttp as Baseline;
use common::wrk::{run_wrk, WrkResult};
use common::{median, ms, thousands, Ccserve};
use std::fmt::Write as _;
use std::time::Duration;

const CONNECTIONS: [u32; 3] = [1, 32, 256];

/// Checks one `GET /` answers 200 with the hello body.
fn check_hello(port: u16, who: &str) {
    let response = common::http_get_close(port);
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("Hello, world!\n"),
        "{who}: unexpected response to GET /:\n{response}"
    );
}

fn main() {
    common::wrk::require();
    let seconds = common::env_knob("CCSERVE_BENCH_SECONDS", 5);
    let rounds = common::rounds();
    let machine = common::machine();

    let baseline = Baseline::start();
    check_hello(baseline.port, "tiny_http baseline");
    let ccserve = Ccserve::start("examples/hello.lua");
    check_hello(ccserve.port, "ccserve");
    let ccserve_status = format!("/proc/{}/status", ccserve.pid());
    let ccserve_idle_threads = common::settled_threads(&ccserve_status);
    let baseline_idle_threads = common::settled_threads("/proc/self/status");

    // results[c][0 = baseline, 1 = ccserve] = one WrkResult per round.
    let mut results: Vec<[Vec<WrkResult>; 2]> = Vec::new();
    for &connections in &CONNECTIONS {
        let mut pair: [Vec<WrkResult>; 2] = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let (port, path, name) = if which == 0 {
                    (baseline.port, "/proc/self/status", "baseline")
                } else {
                    (ccserve.port, ccserve_status.as_str(), "ccserve")
                };
                let mut r = run_wrk(port, connections, seconds, path);
                if which == 0 {
                    // Not the server's: the thread sampling /proc/self/status during the run.
                    r.peak_threads -= 1;
                }
                eprintln!(
                    "c={connections} round {}/{rounds} {name:8}: {:>9} req/s, p50 {} ms, p99 {} ms, peak threads {}",
                    round + 1,
                    thousands(r.requests_per_sec),
                    ms(r.p50),
                    ms(r.p99),
                    r.peak_threads
                );
                pair[which].push(r);
            }
        }
        results.push(pair);
    }
    let ccserve_threads_after = ccserve.status().threads;
    drop(ccserve);
    drop(baseline);

    let mut md = String::new();
    let _ = writeln!(md, "### HTTP hello world: ccserve vs raw tiny_http\n");
    let _ = writeln!(
        md,
        "`wrk --latency -t1 -c1` / `-t2 -c32` / `-t2 -c256`, {seconds} s per run, {rounds} rounds \
         (each round runs both servers, alternating which goes first); medians over rounds. \
         Machine: {machine}. {}.\n",
        common::binary()
    );
    let _ = writeln!(
        md,
        "| connections | baseline req/s | ccserve req/s | ccserve / baseline | ccserve / baseline's best round | baseline p50 / p99 ms | ccserve p50 / p99 ms | peak threads baseline / ccserve (per round) | socket errors baseline / ccserve | non-2xx baseline / ccserve |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for (i, &connections) in CONNECTIONS.iter().enumerate() {
        let [b, c] = &results[i];
        let rps =
            |v: &[WrkResult]| median(&v.iter().map(|r| r.requests_per_sec).collect::<Vec<_>>());
        let lat = |v: &[WrkResult], f: fn(&WrkResult) -> Duration| {
            Duration::from_secs_f64(median(
                &v.iter().map(|r| f(r).as_secs_f64()).collect::<Vec<_>>(),
            ))
        };
        let peaks = |v: &[WrkResult]| {
            v.iter()
                .map(|r| r.peak_threads.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let errors = |v: &[WrkResult]| {
            let mut sum = [0u64; 4];
            for r in v {
                for (s, e) in sum.iter_mut().zip(r.socket_errors) {
                    *s += e;
                }
            }
            if sum == [0; 4] {
                "0".to_string()
            } else {
                format!("c{} r{} w{} t{}", sum[0], sum[1], sum[2], sum[3])
            }
        };
        let non_2xx = |v: &[WrkResult]| v.iter().map(|r| r.non_2xx).sum::<u64>();
        let (b_rps, c_rps) = (rps(b), rps(c));
        let b_best = b.iter().map(|r| r.requests_per_sec).fold(0.0, f64::max);
        let _ = writeln!(
            md,
            "| {connections} | {} | {} | {:.2} | {:.2} | {} / {} | {} / {} | {} / {} | {} / {} | {} / {} |",
            thousands(b_rps),
            thousands(c_rps),
            c_rps / b_rps,
            c_rps / b_best,
            ms(lat(b, |r| r.p50)),
            ms(lat(b, |r| r.p99)),
            ms(lat(c, |r| r.p50)),
            ms(lat(c, |r| r.p99)),
            peaks(b),
            peaks(c),
            errors(b),
            errors(c),
            non_2xx(b),
            non_2xx(c),
        );
    }
    let _ = writeln!(
        md,
        "\nBaseline: stock tiny_http 0.12 hello world in the bench process, one recv thread (as \
         tiny_http's README example), no Lua. Peak threads = the server's thread count, sampled \
         every 20 ms during each run. Idle: baseline {baseline_idle_threads} (bench main, accept, \
         recv, and a pool of at least 4 connection threads), ccserve {ccserve_idle_threads}. Both \
         serve each open connection on a thread of its own, so with every connection served the \
         peak is about 3 + connections for either; a lower peak means connections sat queued \
         behind busy threads and the req/s came from fewer connections (tiny_http's TaskPool \
         race). Because a starved baseline round can be much slower (or faster) than one that \
         served every connection, the table also divides ccserve's median by the baseline's best \
         round, the comparison least favourable to ccserve. ccserve threads right after the last \
         c=256 run: {ccserve_threads_after}."
    );
    common::publish("http", &md);
}
