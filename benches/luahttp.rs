//! ccserve's lua-http API (`require "http.server"`, `src/luahttp/`) against real lua-http 0.4 running
//! the very same scripts under `lua5.2`, and against ccserve's own CraftOS API, in one invocation.
//!
//! - **HTTP hello world**, driven by `wrk --latency` at `-t1 -c1`, `-t2 -c32` and `-t2 -c256`
//!   (keep-alive), three servers:
//!   ccserve running `examples/luahttp_hello.lua` (the lua-http API on ccserve),
//!   `lua5.2 examples/luahttp_hello.lua PORT` with Debian's `lua-http` (real lua-http 0.4 on
//!   cqueues: one process, one thread),
//!   ccserve running `examples/hello.lua` (the CraftOS API: `http.listen`).
//!   For each connection count and each round the three run one after the other, the order
//!   rotating every round. Reported: median req/s and every round's, median p50 / p99, socket
//!   errors and non-2xx responses (summed over rounds), the peak thread count of the server
//!   during each run (sampled every 20 ms), and the server's CPU time per request: user + system
//!   time of the whole server process (`utime` + `stime` of `/proc/PID/stat`, all threads) over
//!   the wrk run, divided by the requests wrk completed; then the ratios ccserve lua-http API /
//!   real lua-http and ccserve lua-http API / ccserve CraftOS API, for req/s and CPU per request.
//! - **WebSocket echo** with the compiled tungstenite client of `benches/ws.rs`
//!   (`benches/common/ws_client.rs`): 1 client × 10,000 sequential 32-byte text messages
//!   (msgs/s, round-trip p50 / p99) and 50 clients × 1,000 at once (msgs/s), for ccserve running
//!   `examples/luahttp_ws_echo.lua` and real lua-http running the same file; the two alternate
//!   which goes first every round. Also the server's CPU time per message (over each workload,
//!   warm-up messages and handshakes included in the time but not in the count).
//!
//! Real lua-http must be installed (`apt-get install lua5.2 lua-http`; `bash bench/run.sh` does
//! it when missing). If `lua5.2` cannot load it, or its server fails to start or dies, the tables
//! say so in its rows ("lua-http: missing (reason)") and the ccserve parts still run. The real
//! lua-http server's stderr goes to `target/bench-results/luahttp-real-*.stderr`. Every socket
//! has a timeout, so a server that stops answering fails its run instead of hanging the bench.
//!
//! Run: `cargo bench --bench luahttp` (or `bash bench/run.sh` for all benches). Needs `wrk`.
//! Knobs: `CCSERVE_BENCH_SECONDS` (wrk `-d`, default 5), `CCSERVE_BENCH_ROUNDS` (default 3),
//! `CCSERVE_BENCH_BIN`. Results: stdout and `target/bench-results/luahttp.md`.

mod common;

use common::process::{probe_luahttp, PeerProcess, LUA};
use common::wrk::{row_cells, WrkSample};
use common::ws_client::{concurrent, sequential, Run, CLIENTS, CLIENT_MESSAGES, WARMUP};
use common::{median_duration, median_of, ms, per_round, ratio, thousands, us, Ccserve};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::Duration;

const CONNECTIONS: [u32; 3] = [1, 32, 256];
const LUAHTTP_HELLO: &str = "examples/luahttp_hello.lua";
const CRAFTOS_HELLO: &str = "examples/hello.lua";
const LUAHTTP_WS_ECHO: &str = "examples/luahttp_ws_echo.lua";

/// Real lua-http: `lua5.2 <script> <port>` on a free port, stopped (and reaped) when dropped.
struct LuaHttp {
    process: PeerProcess,
}

impl LuaHttp {
    /// Starts the script and waits until its port accepts connections.
    fn start(script: &str) -> Result<LuaHttp, String> {
        let port = common::free_port();
        let name = script.rsplit('/').next().unwrap_or(script);
        let log = common::results_dir().join(format!("luahttp-real-{name}.stderr"));
        let mut command = Command::new(LUA);
        command
            .arg(common::repo_root().join(script))
            .arg(port.to_string())
            .current_dir(common::repo_root());
        let process = PeerProcess::start(command, port, log, &format!("{LUA} {script}"))?;
        Ok(LuaHttp { process })
    }

    /// `Some(why)` if the process has exited, with the last line of its stderr.
    fn exited(&mut self) -> Option<String> {
        self.process.exited()
    }

    /// What the server wrote to stderr so far besides its startup line (its `onerror` reports):
    /// the number of lines and the first of them.
    fn stderr_report(&self) -> (usize, Option<String>) {
        let text = self.process.log_text();
        let mut lines = text
            .lines()
            .filter(|line| !line.starts_with("Listening on port"));
        let first = lines.next().map(str::to_string);
        (usize::from(first.is_some()) + lines.count(), first)
    }
}

/// A server under test: a ccserve process or a real lua-http one.
enum Server {
    Ccserve(Ccserve),
    Real(LuaHttp),
}

impl Server {
    fn pid(&self) -> u32 {
        match self {
            Server::Ccserve(s) => s.pid(),
            Server::Real(s) => s.process.pid(),
        }
    }

    fn port(&self) -> u16 {
        match self {
            Server::Ccserve(s) => s.port,
            Server::Real(s) => s.process.port,
        }
    }

    /// `Some(why)` if a real lua-http process has died (a ccserve dying fails its run).
    fn exited(&mut self) -> Option<String> {
        match self {
            Server::Ccserve(_) => None,
            Server::Real(s) => s.exited(),
        }
    }
}

/// One server of a comparison, with its results per workload and round, or why it is missing.
struct Contender<T> {
    /// Table label, e.g. "ccserve, lua-http API".
    label: &'static str,
    server: Result<Server, String>,
    /// Results per workload (connection count / WebSocket workload), one per round.
    results: Vec<Vec<T>>,
}

impl<T> Contender<T> {
    fn new(label: &'static str, server: Result<Server, String>, workloads: usize) -> Self {
        Contender {
            label,
            server,
            results: (0..workloads).map(|_| Vec::new()).collect(),
        }
    }

    /// Runs `measure` on the server, if it is still there; a panic (wrk failing, a client losing
    /// its connection) or a real lua-http process that died marks the server missing from then on.
    /// ccserve failing fails the bench.
    fn run(&mut self, workload: usize, what: &str, measure: impl FnOnce(&Server) -> T) {
        let Ok(server) = &mut self.server else { return };
        if let Some(why) = server.exited() {
            self.server = Err(format!("{why}, before {what}"));
            return;
        }
        let real = matches!(server, Server::Real(_));
        let server = &*server;
        let outcome = if real {
            catch_unwind(AssertUnwindSafe(|| measure(server)))
        } else {
            Ok(measure(server))
        };
        match outcome {
            Ok(result) => self.results[workload].push(result),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into());
                self.server = Err(format!("failed during {what}: {message}"));
            }
        }
    }

    fn missing(&self) -> Option<&str> {
        self.server.as_ref().err().map(String::as_str)
    }
}

/// Runs wrk against `server`, measuring its CPU time over the run.
fn http_sample(server: &Server, connections: u32, seconds: u64) -> WrkSample {
    WrkSample::measure(server.pid(), server.port(), connections, seconds)
}

/// One WebSocket workload and the server's CPU time over it.
#[derive(Clone, Debug)]
struct WsSample {
    run: Run,
    cpu_per_message: Duration,
}

fn ws_sample(server: &Server, workload: usize) -> WsSample {
    let pid = server.pid();
    let before = common::cpu_seconds(pid);
    let (run, messages) = if workload == 0 {
        (
            sequential(server.port()),
            common::ws_client::SEQUENTIAL_MESSAGES,
        )
    } else {
        (concurrent(server.port()), CLIENTS * CLIENT_MESSAGES)
    };
    let cpu = common::cpu_seconds(pid) - before;
    WsSample {
        run,
        cpu_per_message: Duration::from_secs_f64(cpu / messages as f64),
    }
}

/// Checks one `GET /` (with `Connection: close`) answers 200 with the hello body (ccserve's
/// lua-http API and real lua-http send it chunked).
fn check_hello(port: u16) -> Result<(), String> {
    let response = catch_unwind(|| common::http_get_close(port))
        .map_err(|_| "GET / failed (see the panic above)".to_string())?;
    if response.starts_with("HTTP/1.1 200") && response.contains("Hello, world!\n") {
        Ok(())
    } else {
        Err(format!("unexpected response to GET /: {response:?}"))
    }
}

/// Min / median / max client finish time (ms) of the run with the median msgs/s; empty for the
/// sequential workload.
fn finish_times(v: &[WsSample]) -> String {
    common::ws_client::finish_times(v.iter().map(|s| &s.run))
}

/// A note on what real lua-http wrote to stderr during one part (`onerror` reports).
fn stderr_note(md: &mut String, part: &str, script: &str, (lines, first): (usize, Option<String>)) {
    let name = script.rsplit('/').next().unwrap_or(script);
    let _ = write!(
        md,
        "\nReal lua-http wrote {lines} line(s) to stderr during the {part} runs besides its \
         startup line (`target/bench-results/luahttp-real-{name}.stderr`)"
    );
    let _ = match first {
        Some(first) => writeln!(md, "; the first: `{}`.", first.replace('`', "'")),
        None => writeln!(md, "."),
    };
}

fn main() {
    common::wrk::require();
    let seconds = common::env_knob("CCSERVE_BENCH_SECONDS", 5);
    let rounds = common::rounds();
    let machine = common::machine();
    let luahttp = probe_luahttp();
    match &luahttp {
        Ok(version) => eprintln!("real lua-http: {version}"),
        Err(why) => eprintln!("real lua-http: missing ({why}); running the ccserve parts only"),
    }
    let start_real = |script: &str| -> Result<Server, String> {
        luahttp.as_ref().map_err(Clone::clone)?;
        Ok(Server::Real(LuaHttp::start(script)?))
    };

    // HTTP: [0] ccserve lua-http API, [1] real lua-http, [2] ccserve CraftOS API.
    let ccserve_luahttp = Ccserve::start(LUAHTTP_HELLO);
    check_hello(ccserve_luahttp.port).unwrap_or_else(|e| panic!("ccserve {LUAHTTP_HELLO}: {e}"));
    let ccserve_craftos = Ccserve::start(CRAFTOS_HELLO);
    check_hello(ccserve_craftos.port).unwrap_or_else(|e| panic!("ccserve {CRAFTOS_HELLO}: {e}"));
    let real = start_real(LUAHTTP_HELLO).and_then(|server| {
        check_hello(server.port()).map_err(|e| format!("{LUA} {LUAHTTP_HELLO}: {e}"))?;
        Ok(server)
    });
    let mut http: [Contender<WrkSample>; 3] = [
        Contender::new(
            "ccserve, lua-http API (`luahttp_hello.lua`)",
            Ok(Server::Ccserve(ccserve_luahttp)),
            CONNECTIONS.len(),
        ),
        Contender::new(
            "real lua-http 0.4 (`lua5.2 luahttp_hello.lua`)",
            real,
            CONNECTIONS.len(),
        ),
        Contender::new(
            "ccserve, CraftOS API (`hello.lua`)",
            Ok(Server::Ccserve(ccserve_craftos)),
            CONNECTIONS.len(),
        ),
    ];
    for (c, &connections) in CONNECTIONS.iter().enumerate() {
        for round in 0..rounds {
            for i in 0..3 {
                let contender = &mut http[(round + i) % 3];
                let what = format!("the c={connections} run of round {}", round + 1);
                contender.run(c, &what, |server| http_sample(server, connections, seconds));
                let label = contender.label;
                match (contender.missing(), contender.results[c].get(round)) {
                    (None, Some(s)) => eprintln!(
                        "{}",
                        s.progress(&format!(
                            "c={connections} round {}/{rounds} {label}",
                            round + 1
                        ))
                    ),
                    (Some(why), _) => eprintln!(
                        "c={connections} round {}/{rounds} {label}: missing ({why})",
                        round + 1
                    ),
                    (None, None) => unreachable!("a run that neither failed nor produced a result"),
                }
            }
        }
    }
    let real_http_stderr = match &http[1].server {
        Ok(Server::Real(s)) => Some(s.stderr_report()),
        _ => None,
    };
    let http_real_missing = http[1].missing().map(str::to_string);
    for contender in &mut http {
        // Stop the HTTP servers before the WebSocket part.
        if contender.server.is_ok() {
            contender.server = Err("stopped".into());
        }
    }

    // WebSocket: [0] ccserve lua-http API, [1] real lua-http; workloads 0 sequential, 1 concurrent.
    let ws_names = [
        format!(
            "1 client × {}",
            thousands(common::ws_client::SEQUENTIAL_MESSAGES as f64)
        ),
        format!(
            "{CLIENTS} clients × {} at once",
            thousands(CLIENT_MESSAGES as f64)
        ),
    ];
    let mut ws: [Contender<WsSample>; 2] = [
        Contender::new(
            "ccserve, lua-http API (`luahttp_ws_echo.lua`)",
            Ok(Server::Ccserve(Ccserve::start(LUAHTTP_WS_ECHO))),
            2,
        ),
        Contender::new(
            "real lua-http 0.4 (`lua5.2 luahttp_ws_echo.lua`)",
            start_real(LUAHTTP_WS_ECHO),
            2,
        ),
    ];
    for round in 0..rounds {
        for i in 0..2 {
            let contender = &mut ws[(round + i) % 2];
            for (w, name) in ws_names.iter().enumerate() {
                let what = format!("the {name} workload of round {}", round + 1);
                contender.run(w, &what, |server| ws_sample(server, w));
                let label = contender.label;
                match (contender.missing(), contender.results[w].get(round)) {
                    (None, Some(s)) => eprintln!(
                        "ws {name} round {}/{rounds} {label}: {:>7} msg/s, p50 {} µs, p99 {} µs, CPU {} µs/msg{}",
                        round + 1,
                        thousands(s.run.messages_per_sec),
                        us(s.run.p50),
                        us(s.run.p99),
                        us(s.cpu_per_message),
                        if s.run.finish.is_empty() {
                            String::new()
                        } else {
                            format!(
                                ", clients finished {}..{} ms",
                                ms(s.run.finish[0]),
                                ms(*s.run.finish.last().expect("clients"))
                            )
                        },
                    ),
                    (Some(why), _) => eprintln!("ws {name} round {}/{rounds} {label}: missing ({why})", round + 1),
                    (None, None) => unreachable!("a run that neither failed nor produced a result"),
                }
            }
        }
    }
    let real_ws_stderr = match &ws[1].server {
        Ok(Server::Real(s)) => Some(s.stderr_report()),
        _ => None,
    };
    let ws_real_missing = ws[1].missing().map(str::to_string);
    for contender in &mut ws {
        // Stop the WebSocket servers.
        if contender.server.is_ok() {
            contender.server = Err("stopped".into());
        }
    }
    let load_end = common::load_average();

    // ---- report ----
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### lua-http API: ccserve vs real lua-http 0.4 (same scripts), and vs ccserve's CraftOS API\n"
    );
    let _ = writeln!(
        md,
        "Real lua-http: {}. Machine: {machine}; load average at end {load_end}. {}. The servers, \
         wrk and the client share the machine's cores.\n",
        match &luahttp {
            Ok(version) => format!("{version} (`{LUA}`, Debian's lua-http)"),
            Err(why) => format!(
                "**missing** ({why}); install Debian's lua5.2 and lua-http (`bash bench/run.sh` \
                 does it)"
            ),
        },
        common::binary()
    );
    let _ = writeln!(
        md,
        "#### HTTP hello world\n\n`wrk --latency -t1 -c1` / `-t2 -c32` / `-t2 -c256`, {seconds} s \
         per run, {rounds} rounds (each round runs the three servers one after the other, the \
         order rotating by round); medians over rounds. CPU = the server process's user + system \
         time over the run (`/proc/PID/stat`, all threads) / requests completed.\n"
    );
    let _ = writeln!(
        md,
        "| connections | server | req/s | req/s per round | p50 / p99 ms | server CPU µs / request | peak threads (per round) | socket errors | non-2xx |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for (c, &connections) in CONNECTIONS.iter().enumerate() {
        for contender in &http {
            let v = &contender.results[c];
            if v.len() < rounds {
                let why = http_real_missing.as_deref().unwrap_or("no result");
                let _ = writeln!(
                    md,
                    "| {connections} | {} | lua-http: missing ({}) | {} | | | | | |",
                    contender.label,
                    why.replace('|', "\\|"),
                    per_round(v, |s| thousands(s.wrk.requests_per_sec)),
                );
                continue;
            }
            let _ = writeln!(
                md,
                "| {connections} | {} | {} |",
                contender.label,
                row_cells(v)
            );
        }
    }
    let _ = writeln!(
        md,
        "\n| connections | req/s: ccserve lua-http API / real lua-http | req/s: ccserve lua-http API / ccserve CraftOS API | CPU per request: ccserve lua-http API / real lua-http | CPU per request: ccserve lua-http API / ccserve CraftOS API |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for (c, &connections) in CONNECTIONS.iter().enumerate() {
        let complete = |k: usize| http[k].results[c].len() == rounds;
        let rps = |k: usize| {
            complete(k).then(|| median_of(&http[k].results[c], |s| s.wrk.requests_per_sec))
        };
        let cpu = |k: usize| {
            complete(k)
                .then(|| median_duration(&http[k].results[c], |s| s.cpu_per_request).as_secs_f64())
        };
        let _ = writeln!(
            md,
            "| {connections} | {} | {} | {} | {} |",
            ratio(rps(0), rps(1)),
            ratio(rps(0), rps(2)),
            ratio(cpu(0), cpu(1)),
            ratio(cpu(0), cpu(2)),
        );
    }
    if let Some(report) = real_http_stderr {
        stderr_note(&mut md, "HTTP", LUAHTTP_HELLO, report);
    }

    let _ = writeln!(
        md,
        "\n#### WebSocket echo\n\n32-byte text messages, each sent after the previous echo \
         arrived; the compiled tungstenite client of `benches/ws.rs` (TCP_NODELAY), {WARMUP} \
         warm-up messages (1 client) or 10 per client (50 clients) first. {rounds} rounds (both \
         servers each round, alternating which goes first); medians over rounds. Server CPU per \
         message = its CPU time over the workload (handshakes and warm-up included) / the \
         measured messages. Finish = each client's finish time since the common start, in the \
         round with the median msgs/s (a max far above the median means some clients were served \
         long before others).\n"
    );
    let _ = writeln!(
        md,
        "| workload | server | msgs/s | msgs/s per round | round trip p50 / p99 µs | server CPU µs / message | 50 clients: finish min / median / max ms | ccserve / lua-http (msgs/s) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for (w, name) in ws_names.iter().enumerate() {
        let complete = |k: usize| ws[k].results[w].len() == rounds;
        let rate = |k: usize| {
            complete(k).then(|| median_of(&ws[k].results[w], |s| s.run.messages_per_sec))
        };
        for (k, contender) in ws.iter().enumerate() {
            let v = &contender.results[w];
            if !complete(k) {
                let why = ws_real_missing.as_deref().unwrap_or("no result");
                let _ = writeln!(
                    md,
                    "| {name} | {} | lua-http: missing ({}) | {} | | | | |",
                    contender.label,
                    why.replace('|', "\\|"),
                    per_round(v, |s| thousands(s.run.messages_per_sec)),
                );
                continue;
            }
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} / {} | {} | {} | {} |",
                contender.label,
                thousands(median_of(v, |s| s.run.messages_per_sec)),
                per_round(v, |s| thousands(s.run.messages_per_sec)),
                us(median_duration(v, |s| s.run.p50)),
                us(median_duration(v, |s| s.run.p99)),
                us(median_duration(v, |s| s.cpu_per_message)),
                finish_times(v),
                if k == 0 {
                    ratio(rate(0), rate(1))
                } else {
                    "–".into()
                },
            );
        }
    }
    if let Some(report) = real_ws_stderr {
        stderr_note(&mut md, "WebSocket", LUAHTTP_WS_ECHO, report);
    }
    let _ = writeln!(
        md,
        "\nccserve runs every script's coroutines on one Lua thread, with one thread per \
         connection for the sockets (peak threads ≈ 3 + connections); real lua-http runs on \
         cqueues in one thread (epoll), so it uses at most one of the cores."
    );
    common::publish("luahttp", &md);
}
