//! HTTP hello-world throughput and latency: ccserve running `examples/hello.lua` against a raw
//! tiny_http 0.12 baseline (no Lua) in the same invocation, both driven by `wrk`.
//!
//! The baseline is tiny_http's stock README example, in this process: `Server::http`, one thread
//! looping over `incoming_requests()` and answering `200 Hello, world!\n` with
//! `Content-Type: text/plain` (the bytes `examples/hello.lua` sends). For each connection count
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

use common::{median, thousands, Ccserve, ProcStatus};
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BODY: &[u8] = b"Hello, world!\n";
const CONNECTIONS: [u32; 3] = [1, 32, 256];

/// The stock tiny_http hello world, on its own thread in this process.
struct Baseline {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    port: u16,
}

impl Baseline {
    fn start() -> Baseline {
        let server = Arc::new(
            tiny_http::Server::http("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("start the tiny_http baseline: {e}")),
        );
        let port = server
            .server_addr()
            .to_ip()
            .expect("the baseline listens on an IP address")
            .port();
        let recv = server.clone();
        let thread = std::thread::Builder::new()
            .name("baseline-recv".into())
            .spawn(move || {
                let content_type =
                    tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/plain"[..])
                        .expect("a valid header");
                for request in recv.incoming_requests() {
                    let response =
                        tiny_http::Response::from_data(BODY).with_header(content_type.clone());
                    let _ = request.respond(response);
                }
            })
            .expect("spawn the baseline recv thread");
        Baseline {
            server,
            thread: Some(thread),
            port,
        }
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What one wrk run reported.
#[derive(Clone, Debug, Default)]
struct WrkResult {
    requests_per_sec: f64,
    p50: Duration,
    p99: Duration,
    requests: u64,
    /// connect, read, write, timeout.
    socket_errors: [u64; 4],
    non_2xx: u64,
    /// Peak thread count of the server process during the run.
    peak_threads: u64,
}

/// Parses a wrk duration such as `68.00us`, `1.02ms`, `2.00s`, `1.00m`.
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// Parses wrk's `--latency` output.
fn parse_wrk(output: &str) -> Result<WrkResult, String> {
    let mut result = WrkResult::default();
    let (mut rps, mut p50, mut p99, mut requests) = (None, None, None, None);
    for line in output.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        match first {
            "50%" => p50 = words.next().and_then(parse_duration),
            "99%" => p99 = words.next().and_then(parse_duration),
            "Requests/sec:" => rps = words.next().and_then(|w| w.parse::<f64>().ok()),
            _ if line.contains(" requests in ") => requests = first.parse::<u64>().ok(),
            _ => {}
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for (i, part) in rest.split(',').enumerate().take(4) {
                result.socket_errors[i] = part
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| format!("bad socket errors line: {line}"))?;
            }
        }
        if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.non_2xx = rest
                .trim()
                .parse()
                .map_err(|_| format!("bad non-2xx line: {line}"))?;
        }
    }
    let missing = |what: &str| format!("no {what} in wrk output:\n{output}");
    result.requests_per_sec = rps.ok_or_else(|| missing("Requests/sec"))?;
    result.p50 = p50.ok_or_else(|| missing("50% latency"))?;
    result.p99 = p99.ok_or_else(|| missing("99% latency"))?;
    result.requests = requests.ok_or_else(|| missing("request count"))?;
    Ok(result)
}

/// Runs wrk against 127.0.0.1:`port` with `connections` connections for `seconds`, sampling the
/// thread count of `status_path` (the server process) during the run.
fn run_wrk(port: u16, connections: u32, seconds: u64, status_path: &str) -> WrkResult {
    let threads = if connections == 1 { 1 } else { 2 };
    let mut child = Command::new("wrk")
        .arg("--latency")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wrk (apt-get install wrk)");
    // Sample the server's thread count while wrk runs (every 20 ms).
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak, path) = (done.clone(), peak.clone(), status_path.to_string());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(ProcStatus::read(&path).threads, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // wrk ends on its own after `seconds`; bound it anyway so a hang fails the bench.
    let deadline = Instant::now() + Duration::from_secs(seconds + 30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll wrk") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            done.store(true, Ordering::Relaxed);
            panic!("wrk did not finish within {seconds} s + 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("the thread sampler panicked");
    let output = child.wait_with_output().expect("read wrk's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        status.success(),
        "wrk failed ({status}):\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut result = parse_wrk(&stdout).unwrap_or_else(|e| panic!("{e}"));
    result.peak_threads = peak.load(Ordering::Relaxed);
    result
}

/// Checks one `GET /` answers 200 with the hello body.
fn check_hello(port: u16, who: &str) {
    let response = common::http_get_close(port);
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("Hello, world!\n"),
        "{who}: unexpected response to GET /:\n{response}"
    );
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn main() {
    if Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("error: `wrk` is not on PATH; install it with `apt-get install wrk` (or run `bash bench/run.sh`, which does)");
        std::process::exit(1);
    }
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
