//! Driving `wrk --latency` against a server on 127.0.0.1 and parsing its report (shared by
//! `benches/http.rs`, `benches/luahttp.rs` and the others; [`run_wrk_url`] for HTTPS and extra
//! headers, `benches/tls.rs`).

use super::ProcStatus;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exits with a message if `wrk` is not on PATH.
pub fn require() {
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
}

/// What one wrk run reported.
#[derive(Clone, Debug, Default)]
pub struct WrkResult {
    pub requests_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub requests: u64,
    /// connect, read, write, timeout.
    pub socket_errors: [u64; 4],
    pub non_2xx: u64,
    /// Peak thread count of the server process during the run.
    pub peak_threads: u64,
}

/// Parses a wrk duration such as `68.00us`, `1.02ms`, `2.00s`, `1.00m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
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
pub fn parse_wrk(output: &str) -> Result<WrkResult, String> {
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
pub fn run_wrk(port: u16, connections: u32, seconds: u64, status_path: &str) -> WrkResult {
    let threads = if connections == 1 { 1 } else { 2 };
    run_wrk_url(
        &format!("http://127.0.0.1:{port}/"),
        threads,
        connections,
        seconds,
        &[],
        status_path,
    )
}

/// As [`run_wrk`], for any `url` (e.g. `https://127.0.0.1:PORT/`; wrk built with OpenSSL does
/// not verify certificates), with `threads` wrk threads and each of `headers` (`"Name: value"`)
/// passed as `-H`.
pub fn run_wrk_url(
    url: &str,
    threads: u32,
    connections: u32,
    seconds: u64,
    headers: &[&str],
    status_path: &str,
) -> WrkResult {
    let mut child = Command::new("wrk")
        .arg("--latency")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(headers.iter().flat_map(|h| ["-H", h]))
        .arg(url)
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

/// One wrk run and the server's CPU time over it.
#[derive(Clone, Debug)]
pub struct WrkSample {
    pub wrk: WrkResult,
    /// The server's user + system time over the run / the requests wrk completed.
    pub cpu_per_request: Duration,
}

impl WrkSample {
    /// `wrk`'s result with the server's CPU seconds over the run.
    pub fn new(wrk: WrkResult, cpu_seconds: f64) -> WrkSample {
        WrkSample {
            cpu_per_request: Duration::from_secs_f64(
                cpu_seconds.max(0.0) / wrk.requests.max(1) as f64,
            ),
            wrk,
        }
    }

    /// Runs keep-alive `GET /`s with wrk against the process `pid` listening on `port`,
    /// measuring its CPU time (all its threads) over the run.
    pub fn measure(pid: u32, port: u16, connections: u32, seconds: u64) -> WrkSample {
        let before = super::cpu_seconds(pid);
        let wrk = run_wrk(port, connections, seconds, &format!("/proc/{pid}/status"));
        WrkSample::new(wrk, super::cpu_seconds(pid) - before)
    }

    /// The progress line a bench prints after a run (on stderr), after `what` (the run's name).
    pub fn progress(&self, what: &str) -> String {
        format!(
            "{what}: {:>9} req/s, p50 {} ms, p99 {} ms, CPU {} µs/req, peak threads {}, socket errors {:?}, non-2xx {}",
            super::thousands(self.wrk.requests_per_sec),
            super::ms(self.wrk.p50),
            super::ms(self.wrk.p99),
            super::us(self.cpu_per_request),
            self.wrk.peak_threads,
            self.wrk.socket_errors,
            self.wrk.non_2xx,
        )
    }
}

/// The socket errors of `samples` summed: `0`, or `c<connect> r<read> w<write> t<timeout>`.
pub fn socket_errors(samples: &[WrkSample]) -> String {
    let mut sum = [0u64; 4];
    for s in samples {
        for (e, x) in sum.iter_mut().zip(s.wrk.socket_errors) {
            *e += x;
        }
    }
    match sum {
        [0, 0, 0, 0] => "0".to_string(),
        [c, r, w, t] => format!("c{c} r{r} w{w} t{t}"),
    }
}

/// The cells of a markdown table row for the rounds `samples` of one server and workload:
/// `median req/s | req/s per round | median p50 / p99 ms | median CPU µs per request | peak
/// threads per round | socket errors | non-2xx` (the last two summed over the rounds).
pub fn row_cells(samples: &[WrkSample]) -> String {
    use super::{median_duration, median_of, ms, per_round, thousands, us};
    format!(
        "{} | {} | {} / {} | {} | {} | {} | {}",
        thousands(median_of(samples, |s| s.wrk.requests_per_sec)),
        per_round(samples, |s| thousands(s.wrk.requests_per_sec)),
        ms(median_duration(samples, |s| s.wrk.p50)),
        ms(median_duration(samples, |s| s.wrk.p99)),
        us(median_duration(samples, |s| s.cpu_per_request)),
        per_round(samples, |s| s.wrk.peak_threads.to_string()),
        socket_errors(samples),
        samples.iter().map(|s| s.wrk.non_2xx).sum::<u64>(),
    )
}
