//! Streamed responses (`res.write(piece)` + `res.flush()`): ccserve running `bench/stream.lua`
//! against an in-process baseline, a raw Rust server (std `TcpListener`, one thread per
//! connection, no Lua) that writes the same bytes with the same chunked framing.
//!
//! Two workloads, the two servers alternating (which goes first changes every round):
//! - **large response**: one `GET /big` on a fresh connection; the server sends
//!   `CCSERVE_BENCH_STREAM_MIB` MiB (default 1024) as 64 KiB parts, the script calling
//!   `res.write(piece); res.flush()` for each, the baseline writing each part as one 64 KiB chunk.
//!   A compiled client in this process reads through a 256 KiB buffer, decodes the chunk framing
//!   and discards the data, counting body bytes (it checks the count and the final `0` chunk).
//!   Reported: MiB/s from sending the request to the terminator, the ratio ccserve / baseline,
//!   and resident memory: ccserve's VmRSS (`/proc/PID/status`) just before the request and its
//!   peak during the transfer (sampled every 10 ms); for the in-process baseline, the growth of
//!   this bench process's VmRSS during the transfer (server thread, client and sampler together).
//! - **time to first byte**: `GET /first` answered with `data: 1\n\n`, flushed at once (ccserve:
//!   `res.write` + `res.flush()`; baseline: the head and the first chunk in one write), then 2 ms
//!   later `data: 2\n\n` and the end (ccserve: a timer, then `res.close()`; baseline: a sleep).
//!   The time from sending the request to having the whole first chunk is measured for
//!   `CCSERVE_BENCH_TTFB_REQUESTS` (default 1000) sequential requests on one keep-alive
//!   connection per run, after 50 warm-up requests; each response is read to its end before the
//!   next request. Reported: p50 / p99 and the ratio ccserve / baseline.
//!
//! Every socket has a read timeout, so a server that stops answering fails the bench instead of
//! hanging it. Medians over rounds.
//!
//! Run: `cargo bench --bench stream` (or `bash bench/run.sh` for all benches). Knobs:
//! `CCSERVE_BENCH_STREAM_MIB` (default 1024), `CCSERVE_BENCH_TTFB_REQUESTS` (default 1000),
//! `CCSERVE_BENCH_ROUNDS` (default 3), `CCSERVE_BENCH_BIN`. Results: stdout and
//! `target/bench-results/stream.md`.

mod common;

use common::{median, quantile, thousands, Ccserve, ProcStatus};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Size of each streamed part (the script's `piece`, the baseline's chunk).
const PART: usize = 64 * 1024;
/// The client's read buffer for the large response.
const CLIENT_BUFFER: usize = 256 * 1024;
const FIRST: &[u8] = b"data: 1\n\n";
const SECOND: &[u8] = b"data: 2\n\n";
/// How long both servers wait between the first and the second part of `/first`.
const SECOND_AFTER: Duration = Duration::from_millis(2);
const TTFB_WARMUP: usize = 50;
const SCRIPT: &str = "bench/stream.lua";

/// The baseline: a raw Rust HTTP/1.1 server, one thread per connection, in this process.
struct Baseline {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Baseline {
    fn start(mib: u64) -> Baseline {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the baseline server");
        let port = listener.local_addr().expect("baseline address").port();
        // One framed 64 KiB chunk ("10000\r\n", the data, "\r\n"), built once and shared.
        let mut chunk = format!("{PART:x}\r\n").into_bytes();
        chunk.resize(chunk.len() + PART, b'x');
        chunk.extend_from_slice(b"\r\n");
        let chunk = Arc::new(chunk);
        let stop = Arc::new(AtomicBool::new(false));
        let accept_stop = stop.clone();
        let accept = std::thread::Builder::new()
            .name("baseline-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let chunk = chunk.clone();
                    std::thread::spawn(move || serve_connection(stream, mib, &chunk));
                }
            })
            .expect("spawn the baseline accept thread");
        Baseline {
            port,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Answers the requests of one keep-alive connection until the client goes away (any I/O error
/// ends the connection, as a client leaving would).
fn serve_connection(stream: TcpStream, mib: u64, chunk: &[u8]) {
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        // The request line, then header lines up to the blank one (requests have no body).
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let path = String::from_utf8_lossy(&line)
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == b"\r\n" || line == b"\n" => break,
                Ok(_) => {}
            }
        }
        let result = match path.as_str() {
            "/big" => send_big(&mut out, mib, chunk),
            "/first" => send_first(&mut out),
            _ => out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        };
        if result.is_err() {
            return;
        }
    }
}

fn send_big(out: &mut TcpStream, mib: u64, chunk: &[u8]) -> std::io::Result<()> {
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )?;
    for _ in 0..mib * (1 << 20) / PART as u64 {
        out.write_all(chunk)?;
    }
    out.write_all(b"0\r\n\r\n")
}

fn send_first(out: &mut TcpStream) -> std::io::Result<()> {
    let mut first = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                      Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    let _ = write!(first, "{:x}\r\n", FIRST.len());
    first.extend_from_slice(FIRST);
    first.extend_from_slice(b"\r\n");
    out.write_all(&first)?;
    std::thread::sleep(SECOND_AFTER);
    let mut rest = format!("{:x}\r\n", SECOND.len()).into_bytes();
    rest.extend_from_slice(SECOND);
    rest.extend_from_slice(b"\r\n0\r\n\r\n");
    out.write_all(&rest)
}

/// Reads one line (up to and including `\n`) into `line`; panics if the connection ends first.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>, what: &str) {
    line.clear();
    let n = reader
        .read_until(b'\n', line)
        .unwrap_or_else(|e| panic!("read {what}: {e}"));
    assert!(
        n > 0 && line.ends_with(b"\n"),
        "the connection ended while reading {what}"
    );
}

/// Reads a response head; checks the status is 200 and the body is chunked.
fn read_head(reader: &mut impl BufRead, who: &str) {
    let mut line = Vec::new();
    read_line(reader, &mut line, "the status line");
    let status = String::from_utf8_lossy(&line).into_owned();
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "{who}: unexpected status line {status:?}"
    );
    let mut chunked = false;
    loop {
        read_line(reader, &mut line, "a header line");
        if line == b"\r\n" {
            break;
        }
        let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
        if text.starts_with("transfer-encoding:") && text.contains("chunked") {
            chunked = true;
        }
    }
    assert!(chunked, "{who}: the response is not chunked");
}

/// Reads a chunk-size line (hexadecimal, extensions ignored); returns the size.
fn chunk_size(reader: &mut impl BufRead, line: &mut Vec<u8>) -> usize {
    read_line(reader, line, "a chunk size");
    let text = String::from_utf8_lossy(line);
    let hex = text.split([';', '\r', '\n']).next().unwrap_or("").trim();
    usize::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad chunk size line {text:?}"))
}

/// Reads the CRLF after a chunk's data.
fn chunk_end(reader: &mut impl BufRead, line: &mut Vec<u8>) {
    read_line(reader, line, "the end of a chunk");
    assert!(line == b"\r\n", "expected CRLF after a chunk, got {line:?}");
}

/// Reads the trailer section after the `0` chunk, up to the blank line.
fn trailer(reader: &mut impl BufRead, line: &mut Vec<u8>) {
    loop {
        read_line(reader, line, "the trailer");
        if line == b"\r\n" {
            return;
        }
    }
}

/// Consumes `n` bytes of chunk data straight from the reader's buffer (no copy).
fn skip(reader: &mut impl BufRead, mut n: usize) {
    while n > 0 {
        let available = reader.fill_buf().expect("read body bytes").len();
        assert!(available > 0, "the connection ended inside a chunk");
        let take = available.min(n);
        reader.consume(take);
        n -= take;
    }
}

/// Polls the VmRSS of a `/proc/.../status` file every 10 ms on a thread of its own, keeping the
/// peak.
struct RssSampler {
    done: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

impl RssSampler {
    fn start(path: &str) -> RssSampler {
        let done = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (done, peak, path) = (done.clone(), peak.clone(), path.to_string());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(ProcStatus::read(&path).rss_kib, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        RssSampler { done, peak, thread }
    }

    /// Stops sampling; returns the peak VmRSS seen, KiB.
    fn finish(self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().expect("the RSS sampler panicked");
        self.peak.load(Ordering::Relaxed)
    }
}

/// One large transfer.
#[derive(Clone, Copy, Debug)]
struct Transfer {
    mib_per_sec: f64,
    /// VmRSS just before the request and its peak during the transfer, KiB.
    rss_before_kib: u64,
    rss_peak_kib: u64,
}

/// `GET /big` on a fresh connection, read to its end; `status_path` is the server's
/// `/proc/.../status`.
fn transfer(port: u16, mib: u64, status_path: &str, who: &str) -> Transfer {
    let stream = common::connect(port);
    let mut out = stream.try_clone().expect("clone the client socket");
    let mut reader = BufReader::with_capacity(CLIENT_BUFFER, stream);
    let rss_before_kib = ProcStatus::read(status_path).rss_kib;
    let sampler = RssSampler::start(status_path);
    let start = Instant::now();
    out.write_all(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send GET /big");
    read_head(&mut reader, who);
    let mut line = Vec::new();
    let mut body = 0u64;
    loop {
        let size = chunk_size(&mut reader, &mut line);
        if size == 0 {
            trailer(&mut reader, &mut line);
            break;
        }
        skip(&mut reader, size);
        chunk_end(&mut reader, &mut line);
        body += size as u64;
    }
    let elapsed = start.elapsed();
    let rss_peak_kib = sampler.finish().max(rss_before_kib);
    assert_eq!(body, mib << 20, "{who}: wrong body length");
    Transfer {
        mib_per_sec: (body as f64 / (1 << 20) as f64) / elapsed.as_secs_f64(),
        rss_before_kib,
        rss_peak_kib,
    }
}

/// `requests` sequential `GET /first` on one keep-alive connection (after warm-up); returns each
/// time from sending the request to having the first chunk, sorted.
fn time_to_first_chunk(port: u16, requests: usize, who: &str) -> Vec<Duration> {
    let stream = common::connect(port);
    let mut out = stream.try_clone().expect("clone the client socket");
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut data = Vec::new();
    let mut times = Vec::with_capacity(requests);
    for i in 0..TTFB_WARMUP + requests {
        let start = Instant::now();
        out.write_all(b"GET /first HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("send GET /first");
        read_head(&mut reader, who);
        let size = chunk_size(&mut reader, &mut line);
        data.resize(size, 0);
        reader
            .read_exact(&mut data)
            .expect("read the first chunk's data");
        let elapsed = start.elapsed();
        assert_eq!(data, FIRST, "{who}: wrong first chunk");
        chunk_end(&mut reader, &mut line);
        // The rest of the response: the second part, then the end.
        let mut rest = Vec::new();
        loop {
            let size = chunk_size(&mut reader, &mut line);
            if size == 0 {
                trailer(&mut reader, &mut line);
                break;
            }
            let from = rest.len();
            rest.resize(from + size, 0);
            reader
                .read_exact(&mut rest[from..])
                .expect("read a chunk's data");
            chunk_end(&mut reader, &mut line);
        }
        assert_eq!(rest, SECOND, "{who}: wrong rest of the response");
        if i >= TTFB_WARMUP {
            times.push(elapsed);
        }
    }
    times.sort_unstable();
    times
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    let stream_mib = common::env_knob("CCSERVE_BENCH_STREAM_MIB", 1024);
    let requests = common::env_knob("CCSERVE_BENCH_TTFB_REQUESTS", 1000) as usize;
    let rounds = common::rounds();
    let machine = common::machine();

    let baseline = Baseline::start(stream_mib);
    let ccserve = Ccserve::start_with_args(SCRIPT, &[&stream_mib.to_string()]);
    let ccserve_status = format!("/proc/{}/status", ccserve.pid());
    const SELF_STATUS: &str = "/proc/self/status";

    // [0 = baseline, 1 = ccserve], one entry per round.
    let mut transfers: [Vec<Transfer>; 2] = [Vec::new(), Vec::new()];
    let mut ttfb: [Vec<Vec<Duration>>; 2] = [Vec::new(), Vec::new()];
    let ccserve_idle_kib = ProcStatus::read(&ccserve_status).rss_kib;
    let name = |which: usize| if which == 0 { "baseline" } else { "ccserve" };
    for round in 0..rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let (port, path) = if which == 0 {
                (baseline.port, SELF_STATUS)
            } else {
                (ccserve.port, ccserve_status.as_str())
            };
            let t = transfer(port, stream_mib, path, name(which));
            eprintln!(
                "{stream_mib} MiB round {}/{rounds} {:8}: {:>7} MiB/s, VmRSS {} -> peak {} MiB",
                round + 1,
                name(which),
                thousands(t.mib_per_sec),
                mib(t.rss_before_kib),
                mib(t.rss_peak_kib)
            );
            transfers[which].push(t);
        }
        for which in order {
            let port = if which == 0 {
                baseline.port
            } else {
                ccserve.port
            };
            let times = time_to_first_chunk(port, requests, name(which));
            eprintln!(
                "first chunk round {}/{rounds} {:8}: p50 {} us, p99 {} us",
                round + 1,
                name(which),
                micros(quantile(&times, 0.50)),
                micros(quantile(&times, 0.99))
            );
            ttfb[which].push(times);
        }
    }
    let load_after = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    drop(ccserve);
    drop(baseline);

    let rate = |v: &[Transfer]| median(&v.iter().map(|t| t.mib_per_sec).collect::<Vec<_>>());
    let per_round = |v: &[Transfer]| {
        v.iter()
            .map(|t| thousands(t.mib_per_sec))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rss = |v: &[Transfer], f: fn(&Transfer) -> u64| {
        median(&v.iter().map(|t| f(t) as f64).collect::<Vec<_>>()) as u64
    };
    let [b, c] = &transfers;
    let (b_rate, c_rate) = (rate(b), rate(c));
    let c_peak_max = c.iter().map(|t| t.rss_peak_kib).max().unwrap_or(0);
    let b_growth = b
        .iter()
        .map(|t| format!("+{}", mib(t.rss_peak_kib - t.rss_before_kib)))
        .collect::<Vec<_>>()
        .join(", ");

    let mut md = String::new();
    let _ = writeln!(md, "### Streamed responses: ccserve vs a raw Rust server\n");
    let _ = writeln!(
        md,
        "`{SCRIPT}` (`res.write(piece); res.flush()`) against a raw Rust server in the bench \
         process (std TcpListener, a thread per connection, no Lua), one compiled client in the \
         bench process; {rounds} rounds (each runs both servers, alternating which goes first), \
         medians over rounds. Machine: {machine}; load average at the end {load_after}. {}.\n",
        common::binary()
    );
    let _ = writeln!(
        md,
        "| {stream_mib} MiB in 64 KiB chunked parts, one connection | baseline MiB/s | ccserve MiB/s | ccserve / baseline | baseline MiB/s per round | ccserve MiB/s per round | ccserve VmRSS before / peak during (max over rounds) | bench process VmRSS growth during a baseline transfer (per round) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        md,
        "| `GET /big` | {} | {} | {:.2} | {} | {} | {} / {} MiB ({}) | {} MiB |",
        thousands(b_rate),
        thousands(c_rate),
        c_rate / b_rate,
        per_round(b),
        per_round(c),
        mib(rss(c, |t| t.rss_before_kib)),
        mib(rss(c, |t| t.rss_peak_kib)),
        mib(c_peak_max),
        b_growth,
    );
    let _ = writeln!(
        md,
        "\nMiB/s: body bytes from sending the request to the final `0` chunk, the client \
         decoding the chunk framing through a {} KiB buffer and discarding the data. ccserve \
         VmRSS: its process, read just before each request and sampled every 10 ms during the \
         transfer (idle after start: {} MiB). The baseline runs inside the bench process, so its \
         column is that process's VmRSS growth during the transfer: the baseline's connection \
         thread, the client's buffer and the sampler thread together.\n",
        CLIENT_BUFFER / 1024,
        mib(ccserve_idle_kib)
    );

    let lat = |v: &[Vec<Duration>], q: f64| {
        Duration::from_secs_f64(median(
            &v.iter()
                .map(|times| quantile(times, q).as_secs_f64())
                .collect::<Vec<_>>(),
        ))
    };
    let [tb, tc] = &ttfb;
    let (b50, b99, c50, c99) = (lat(tb, 0.5), lat(tb, 0.99), lat(tc, 0.5), lat(tc, 0.99));
    let _ = writeln!(
        md,
        "| first chunk of a streamed response, {} requests on one keep-alive connection | baseline p50 / p99 µs | ccserve p50 / p99 µs | ccserve / baseline p50 | ccserve / baseline p99 |",
        thousands(requests as f64)
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    let _ = writeln!(
        md,
        "| `GET /first` | {} / {} | {} / {} | {:.2} | {:.2} |",
        micros(b50),
        micros(b99),
        micros(c50),
        micros(c99),
        c50.as_secs_f64() / b50.as_secs_f64(),
        c99.as_secs_f64() / b99.as_secs_f64(),
    );
    let _ = writeln!(
        md,
        "\nTime from sending the request to having all of the first chunk (`data: 1\\n\\n`), \
         which ccserve's script sends with `res.write` + `res.flush()` and the baseline with its \
         head in one write; both send `data: 2\\n\\n` and end the response {} ms later (a timer \
         in the script, a sleep in the baseline), and the client reads each response to its end \
         before the next request. {TTFB_WARMUP} warm-up requests per run are not counted; p50 and \
         p99 are medians over rounds.",
        SECOND_AFTER.as_millis()
    );
    common::publish("stream", &md);
}
