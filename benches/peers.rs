//! ccserve against the servers a user would pick instead, in one invocation, alternating: Lune,
//! real lua-http 0.4, nginx with ngx_http_lua, and the raw tiny_http and raw tungstenite
//! baselines (no Lua). Every server listens on 127.0.0.1 only and serves the same hello world as
//! `examples/hello.lua` (`200`, `Content-Type: text/plain`, `Hello, world!\n`; checked with one
//! `GET /` before measuring) and the same WebSocket echo.
//!
//! - **HTTP hello world**, driven by `wrk --latency` at `-t1 -c1`, `-t2 -c32` and `-t2 -c256`
//!   (keep-alive), `CCSERVE_BENCH_SECONDS` per run. Servers: ccserve running `examples/hello.lua`
//!   (the CraftOS API; the reference every ratio is taken against) and `examples/luahttp_hello.lua`
//!   (its lua-http API); Lune running `bench/peers/lune_hello.luau` (`net.serve`); real lua-http
//!   0.4 running `lua5.2 examples/luahttp_hello.lua` (Debian's `lua-http`, its listen host forced
//!   to 127.0.0.1 by a `-e` prelude); nginx with Debian's `libnginx-mod-http-lua` (master + 1
//!   worker, `content_by_lua_block`, `keepalive_requests 1000000`, config generated in a temp
//!   dir); raw tiny_http 0.12 in this process (`benches/common/baseline.rs`). For each connection
//!   count and each round (`CCSERVE_BENCH_ROUNDS`) every server runs once, one after the other,
//!   the order rotating by one every round. Reported per server: median req/s and every
//!   round's, median p50 / p99, socket errors and non-2xx responses (summed over rounds), the
//!   server's CPU time per request (median), whether all N connections opened at once were each
//!   answered (after each run: N connections opened and held, one `GET /` sent on each, every
//!   response awaited), and the ratios ccserve / this for req/s, this / ccserve for p99 and for
//!   CPU per request.
//! - **WebSocket echo** with the compiled tungstenite client of `benches/ws.rs`
//!   (`benches/common/ws_client.rs`, TCP_NODELAY, 32-byte text messages, each sent after the
//!   previous echo): 1 client × 10,000 sequential messages (after 200 warm-up ones) and 50
//!   clients × 1,000 at once (after 10 warm-up each). Servers: ccserve running
//!   `examples/ws_echo.lua` (the reference) and `examples/luahttp_ws_echo.lua`, Lune running
//!   `bench/peers/lune_ws_echo.luau`, real lua-http running `examples/luahttp_ws_echo.lua`, raw
//!   tungstenite 0.30 in this process. nginx is HTTP-only in this comparison (its row says so).
//!   Reported: median msgs/s and every round's, round-trip p50 / p99, CPU per message, the 50
//!   clients' finish times, and the same ratios.
//!
//! Server CPU time: for a server process, user + system time over the run of the process and
//! its descendants (`utime` + `stime` + `cutime` + `cstime` of `/proc/PID/stat` for each process
//! of the tree: nginx's master and worker together), divided by the requests wrk completed or the
//! measured messages (handshakes and warm-up messages are in the time, not in the count). For the
//! in-process baselines, the CPU time of their own threads only (named `tinyhttp-*` /
//! `tungst-*`: each one's time on CPU from `/proc/self/task/TID/schedstat`, in ns; each
//! tungstenite echo thread adds its own `CLOCK_THREAD_CPUTIME_ID` time as it ends), so wrk's
//! sampler and the WebSocket clients in this process are not counted (a tiny_http thread that
//! ends during a run is not counted either; its pool keeps idle threads for 5 s).
//!
//! Peers come from the machine: Lune is `$CCSERVE_BENCH_LUNE`, else
//! `${XDG_CACHE_HOME:-$HOME/.cache}/ccserve-bench/lune/bin/lune`, else `lune` on PATH; nginx is
//! `$CCSERVE_BENCH_NGINX`, else `nginx` on PATH or in /usr/sbin, with ngx_http_lua (and NDK) from
//! Debian's module directory; lua-http is Debian's `lua-http` under `lua5.2`. `bash bench/run.sh`
//! installs them when missing. A peer that is absent, fails to start or to answer the hello
//! check, or dies or fails during a run, stays in the tables as "missing: <reason>" (from then
//! on). Peers' output goes to `target/bench-results/peers-*.log` (nginx's error log:
//! `peers-nginx-error.log`), and the report counts what those logs reported: Lune's panics,
//! real lua-http's `onerror` lines, nginx's error-log entries at `warn` or above. Every wait is
//! bounded; every child process is stopped (SIGTERM, then SIGKILL for the whole process tree)
//! and reaped when the bench ends, also on a panic.
//!
//! Run: `cargo bench --bench peers` (or `bash bench/run.sh` for all benches). Needs `wrk`.
//! Knobs: `CCSERVE_BENCH_SECONDS` (wrk `-d`, default 5), `CCSERVE_BENCH_ROUNDS` (default 3),
//! `CCSERVE_BENCH_BIN`, `CCSERVE_BENCH_LUNE`, `CCSERVE_BENCH_NGINX`. Results: stdout and
//! `target/bench-results/peers.md`. Exits with 1 (after writing the tables) if a ccserve row has
//! no result.

mod common;

use common::baseline::{TinyHttp, TungsteniteEcho};
use common::process::{probe_luahttp, PeerProcess, LUA};
use common::wrk::{run_wrk, WrkResult};
use common::ws_client::{
    concurrent, sequential, Run, CLIENTS, CLIENT_MESSAGES, CLIENT_WARMUP, SEQUENTIAL_MESSAGES,
    WARMUP,
};
use common::{
    median_duration, median_of, ms, per_round, ratio, thousands, tree_cpu_seconds, us, Ccserve,
    ThreadsCpu,
};
use std::any::Any;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONNECTIONS: [u32; 3] = [1, 32, 256];
const HELLO: &str = "examples/hello.lua";
const LUAHTTP_HELLO: &str = "examples/luahttp_hello.lua";
const WS_ECHO: &str = "examples/ws_echo.lua";
const LUAHTTP_WS_ECHO: &str = "examples/luahttp_ws_echo.lua";
const LUNE_HELLO: &str = "bench/peers/lune_hello.luau";
const LUNE_WS_ECHO: &str = "bench/peers/lune_ws_echo.luau";

/// Prepended to real lua-http's script with `lua5.2 -e`: the example scripts listen on 0.0.0.0;
/// here every server listens on 127.0.0.1 only.
const LUAHTTP_LOOPBACK: &str = r#"local server = require "http.server"
local listen = server.listen
server.listen = function(options) options.host = "127.0.0.1"; return listen(options) end"#;

/// Where the ngx_http_lua module (and NDK, which it needs) may be: Debian's
/// `libnginx-mod-http-lua` puts them in /usr/lib/nginx/modules (its
/// /usr/share/nginx/modules-available/mod-http-lua.conf loads `modules/…` from there).
const NGINX_MODULE_DIRS: [&str; 5] = [
    "/usr/lib/nginx/modules",
    "/usr/share/nginx/modules",
    "/usr/lib64/nginx/modules",
    "/usr/local/nginx/modules",
    "/etc/nginx/modules",
];

// ---------------------------------------------------------------------------------------------
// Finding the peers

/// The first `name` in the directories of `$PATH`, else the first of `fallbacks` that exists.
fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file())
}

/// The program named by the environment variable `var` if it is set, else `default()`.
fn program_from_env(
    var: &str,
    default: impl FnOnce() -> Result<PathBuf, String>,
) -> Result<PathBuf, String> {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!("${var} = {} is not a file", path.display()))
            }
        }
        _ => default(),
    }
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/ccserve-bench/lune/bin/lune`, where `bench/run.sh` installs
/// Lune.
fn lune_cache_path() -> Option<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(cache.join("ccserve-bench/lune/bin/lune"))
}

/// The Lune binary and its version (`lune 0.11.1`), or why there is none.
fn find_lune() -> Result<(PathBuf, String), String> {
    let cache = lune_cache_path();
    let bin = program_from_env("CCSERVE_BENCH_LUNE", || {
        cache
            .as_ref()
            .filter(|path| path.is_file())
            .cloned()
            .or_else(|| find_program("lune", &[]))
            .ok_or_else(|| {
                format!(
                    "Lune not found (not in $CCSERVE_BENCH_LUNE, {}, nor on PATH); \
                     `bash bench/run.sh` installs it",
                    cache
                        .as_ref()
                        .map_or("the cache".into(), |p| p.display().to_string())
                )
            })
    })?;
    let version = program_output(&bin, &["--version"])?;
    Ok((bin, version))
}

/// The nginx binary, its version (`nginx/1.22.1`) and the `load_module` lines for ngx_http_lua,
/// or why there are none.
fn find_nginx() -> Result<(PathBuf, String, Vec<PathBuf>), String> {
    let bin = program_from_env("CCSERVE_BENCH_NGINX", || {
        find_program(
            "nginx",
            &[
                "/usr/sbin/nginx",
                "/usr/local/sbin/nginx",
                "/usr/local/nginx/sbin/nginx",
            ],
        )
        .ok_or_else(|| {
            "nginx not found (not in $CCSERVE_BENCH_NGINX, on PATH nor in /usr/sbin); \
             `bash bench/run.sh` installs nginx and libnginx-mod-http-lua"
                .to_string()
        })
    })?;
    let version = program_output(&bin, &["-v"])?;
    let version = version
        .strip_prefix("nginx version: ")
        .unwrap_or(&version)
        .to_string();
    // Without the module file, nginx may have it built in (OpenResty); starting it tells.
    let modules = NGINX_MODULE_DIRS
        .iter()
        .map(Path::new)
        .find(|dir| dir.join("ngx_http_lua_module.so").is_file())
        .map(|dir| {
            ["ndk_http_module.so", "ngx_http_lua_module.so"]
                .iter()
                .map(|file| dir.join(file))
                .filter(|path| path.is_file())
                .collect()
        })
        .unwrap_or_default();
    Ok((bin, version, modules))
}

/// The version of Debian's ngx_http_lua package, if dpkg knows it.
fn nginx_lua_package_version() -> Option<String> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "libnginx-mod-http-lua"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !version.is_empty()).then_some(version)
}

/// The first line a program prints (on stdout or stderr) for `args`, or why it could not run.
fn program_output(bin: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let first = text.lines().next().unwrap_or("").trim().to_string();
    if output.status.success() && !first.is_empty() {
        Ok(first)
    } else {
        Err(format!(
            "`{} {}` failed ({}){}",
            bin.display(),
            args.join(" "),
            output.status,
            if first.is_empty() {
                String::new()
            } else {
                format!(": {first}")
            }
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Starting the servers

/// `target/bench-results/peers-<name>.log`.
fn log_path(name: &str) -> PathBuf {
    common::results_dir().join(format!("peers-{name}.log"))
}

fn start_lune(lune: &Result<(PathBuf, String), String>, script: &str) -> Result<Server, String> {
    let (bin, _) = lune.as_ref().map_err(Clone::clone)?;
    let port = common::free_port();
    let name = Path::new(script)
        .file_stem()
        .map_or("lune".into(), |s| s.to_string_lossy());
    let mut command = Command::new(bin);
    command
        .arg("run")
        .arg(common::repo_root().join(script))
        .arg(port.to_string())
        .current_dir(common::repo_root());
    let process = PeerProcess::start(
        command,
        port,
        log_path(&name),
        &format!("lune run {script}"),
    )?;
    Ok(Server::Lune(process))
}

fn start_luahttp(probe: &Result<String, String>, script: &str) -> Result<Server, String> {
    probe.as_ref().map_err(Clone::clone)?;
    let port = common::free_port();
    let name = Path::new(script)
        .file_stem()
        .map_or("lua".into(), |s| s.to_string_lossy());
    let mut command = Command::new(LUA);
    command
        .arg("-e")
        .arg(LUAHTTP_LOOPBACK)
        .arg(common::repo_root().join(script))
        .arg(port.to_string())
        .current_dir(common::repo_root());
    let log = log_path(&format!("real-{name}"));
    let process = PeerProcess::start(command, port, log, &format!("{LUA} {script}"))?;
    Ok(Server::LuaHttp(process))
}

fn start_ccserve(script: &str) -> Result<Server, String> {
    catch_unwind(|| Ccserve::start(script))
        .map(Server::Ccserve)
        .map_err(|panic| format!("ccserve {script} did not start: {}", panic_message(&*panic)))
}

/// nginx (master + 1 worker) with a generated config in a temp dir, removed when dropped (after
/// the processes are stopped: fields drop in order).
struct Nginx {
    process: PeerProcess,
    _dir: TempDir,
    error_log: PathBuf,
}

impl Nginx {
    fn start(found: &Result<(PathBuf, String, Vec<PathBuf>), String>) -> Result<Nginx, String> {
        let (bin, _, modules) = found.as_ref().map_err(Clone::clone)?;
        let dir = TempDir::new("nginx")?;
        let port = common::free_port();
        let error_log = log_path("nginx-error");
        let _ = std::fs::remove_file(&error_log);
        let d = dir.path.display();
        let mut conf = String::new();
        for module in modules {
            let _ = writeln!(conf, "load_module {};", module.display());
        }
        let _ = write!(
            conf,
            r#"daemon off;
master_process on;
worker_processes 1;
error_log {error_log} notice;
pid {d}/nginx.pid;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            content_by_lua_block {{ ngx.header.content_type = "text/plain"; ngx.print("Hello, world!\n") }}
        }}
    }}
}}
"#,
            error_log = error_log.display(),
        );
        let conf_path = dir.path.join("nginx.conf");
        std::fs::write(&conf_path, conf)
            .map_err(|e| format!("cannot write {}: {e}", conf_path.display()))?;
        let mut command = Command::new(bin);
        command
            .arg("-p")
            .arg(&dir.path)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(&error_log);
        let what = format!("nginx -p {d} -c {}", conf_path.display());
        let process = PeerProcess::start(command, port, log_path("nginx"), &what)
            .map_err(|why| format!("{why}{}", last_error(&error_log)))?;
        Ok(Nginx {
            process,
            _dir: dir,
            error_log,
        })
    }
}

/// `; error log: <its last line>` for nginx's error log, if it has one.
fn last_error(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .last()
                .map(|l| format!("; error log: {}", l.trim()))
        })
        .unwrap_or_default()
}

/// A directory under the system temp dir, removed (with its contents) when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(what: &str) -> Result<TempDir, String> {
        let base = std::env::temp_dir();
        for n in 0..100 {
            let path = base.join(format!("ccserve-bench-{what}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            }
        }
        Err(format!("cannot create a temp dir under {}", base.display()))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Servers and their CPU time

/// A server under test.
enum Server {
    Ccserve(Ccserve),
    Lune(PeerProcess),
    /// Real lua-http.
    LuaHttp(PeerProcess),
    Nginx(Nginx),
    TinyHttp(TinyHttp),
    Tungstenite(TungsteniteEcho),
}

/// A reading of a server's CPU time, to subtract from a later one.
enum CpuReading {
    /// Seconds so far (a process tree, or the tungstenite baseline's threads).
    Total(f64),
    /// The tiny_http baseline's threads.
    Threads(ThreadsCpu),
}

impl CpuReading {
    /// Seconds of CPU time from `before` to this reading.
    fn since(&self, before: &CpuReading) -> f64 {
        match (self, before) {
            (CpuReading::Total(now), CpuReading::Total(then)) => now - then,
            (CpuReading::Threads(now), CpuReading::Threads(then)) => now.since(then),
            _ => unreachable!("CPU readings of two kinds of server"),
        }
    }
}

impl Server {
    fn port(&self) -> u16 {
        match self {
            Server::Ccserve(s) => s.port,
            Server::Lune(s) | Server::LuaHttp(s) => s.port,
            Server::Nginx(s) => s.process.port,
            Server::TinyHttp(s) => s.port,
            Server::Tungstenite(s) => s.port,
        }
    }

    /// The process id, for a server process.
    fn pid(&self) -> Option<u32> {
        match self {
            Server::Ccserve(s) => Some(s.pid()),
            Server::Lune(s) | Server::LuaHttp(s) => Some(s.pid()),
            Server::Nginx(s) => Some(s.process.pid()),
            Server::TinyHttp(_) | Server::Tungstenite(_) => None,
        }
    }

    /// `/proc/PID/status` of the server (this process's for the baselines), for wrk's thread
    /// sampler.
    fn status_path(&self) -> String {
        match (self, self.pid()) {
            // nginx's worker (its first child) serves the requests; the master only watches it.
            (Server::Nginx(_), Some(pid)) => {
                let worker = common::process_tree(pid).get(1).copied().unwrap_or(pid);
                format!("/proc/{worker}/status")
            }
            (_, Some(pid)) => format!("/proc/{pid}/status"),
            (_, None) => "/proc/self/status".into(),
        }
    }

    /// `Some(why)` if the server process has exited.
    fn exited(&mut self) -> Option<String> {
        match self {
            Server::Ccserve(s) => s.exited(),
            Server::Lune(s) | Server::LuaHttp(s) => s.exited(),
            Server::Nginx(s) => s
                .process
                .exited()
                .map(|why| format!("{why}{}", last_error(&s.error_log))),
            Server::TinyHttp(_) | Server::Tungstenite(_) => None,
        }
    }

    /// For a peer process: the problems its log reports so far.
    fn log_note(&self) -> Option<LogNote> {
        match self {
            // Rust panics (Lune 0.11 panics in a connection's task, and the connection is lost).
            Server::Lune(s) => {
                let text = s.log_text();
                let lines: Vec<&str> = text.lines().collect();
                let panics: Vec<usize> = (0..lines.len())
                    .filter(|&i| lines[i].contains("panicked at"))
                    .collect();
                let first = panics.first().map(|&i| {
                    format!(
                        "{} {}",
                        lines[i].trim(),
                        lines.get(i + 1).unwrap_or(&"").trim()
                    )
                });
                Some(LogNote::new(&s.log, "panics", panics.len(), first))
            }
            // Everything but the startup line (the example's `onerror` reports).
            Server::LuaHttp(s) => {
                let text = s.log_text();
                let mut lines = text.lines().filter(|line| {
                    !line.trim().is_empty() && !line.starts_with("Listening on port")
                });
                let first = lines.next().map(str::to_string);
                let count = usize::from(first.is_some()) + lines.count();
                Some(LogNote::new(
                    &s.log,
                    "lines besides the startup line",
                    count,
                    first,
                ))
            }
            // Error log entries at `warn` or above (it is written at `notice`).
            Server::Nginx(s) => {
                let text = std::fs::read_to_string(&s.error_log).unwrap_or_default();
                let mut lines = text.lines().filter(|line| {
                    ["[warn]", "[error]", "[crit]", "[alert]", "[emerg]"]
                        .iter()
                        .any(|level| line.contains(level))
                });
                let first = lines.next().map(str::to_string);
                let count = usize::from(first.is_some()) + lines.count();
                Some(LogNote::new(
                    &s.error_log,
                    "entries at warn or above",
                    count,
                    first,
                ))
            }
            Server::Ccserve(_) | Server::TinyHttp(_) | Server::Tungstenite(_) => None,
        }
    }

    fn cpu(&self) -> CpuReading {
        match self {
            Server::TinyHttp(s) => CpuReading::Threads(s.cpu_seconds()),
            Server::Tungstenite(s) => {
                CpuReading::Total(s.cpu_seconds().unwrap_or_else(|e| panic!("{e}")))
            }
            _ => CpuReading::Total(tree_cpu_seconds(self.pid().expect("a server process"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Contenders: a server, its results, or why it has none

struct Contender<T> {
    /// Table label.
    label: String,
    /// A ccserve row (a failure of it fails the bench, after the report).
    ccserve: bool,
    server: Option<Server>,
    /// Why the server is not (or no longer) measured: "missing: …" or "not measured: …".
    missing: Option<String>,
    /// Results per workload (connection count / WebSocket workload), one per round.
    results: Vec<Vec<T>>,
    /// What the server's log reported, taken when it was stopped (peer processes only).
    log_note: Option<LogNote>,
}

/// Problems a peer process's log reports.
struct LogNote {
    log: PathBuf,
    /// What is counted ("panics").
    what: &'static str,
    count: usize,
    first: Option<String>,
}

impl LogNote {
    fn new(log: &Path, what: &'static str, count: usize, first: Option<String>) -> LogNote {
        LogNote {
            log: log.to_path_buf(),
            what,
            count,
            first,
        }
    }
}

impl<T> Contender<T> {
    fn new(label: String, ccserve: bool, server: Result<Server, String>, workloads: usize) -> Self {
        let (server, missing) = match server {
            Ok(server) => (Some(server), None),
            Err(why) => (None, Some(format!("missing: {why}"))),
        };
        Contender {
            label,
            ccserve,
            server,
            missing,
            results: (0..workloads).map(|_| Vec::new()).collect(),
            log_note: None,
        }
    }

    fn not_measured(label: String, why: &str, workloads: usize) -> Self {
        Contender {
            label,
            ccserve: false,
            server: None,
            missing: Some(format!("not measured: {why}")),
            results: (0..workloads).map(|_| Vec::new()).collect(),
            log_note: None,
        }
    }

    /// Runs `measure` on the server if it is still there; if it has exited, or `measure` panics
    /// (wrk failing, a client losing its connection), the server is stopped and missing from then
    /// on. Returns the new result.
    fn run(
        &mut self,
        workload: usize,
        what: &str,
        measure: impl FnOnce(&Server) -> T,
    ) -> Option<&T> {
        let server = self.server.as_mut()?;
        if let Some(why) = server.exited() {
            self.fail(format!("{why}, before {what}"));
            return None;
        }
        let server = &*server;
        match catch_unwind(AssertUnwindSafe(|| measure(server))) {
            Ok(result) => {
                self.results[workload].push(result);
                self.results[workload].last()
            }
            Err(panic) => {
                // A server that died explains the failure better than the panic it caused.
                let why = match self.server.as_mut().and_then(Server::exited) {
                    Some(exited) => format!("{exited}, during {what}"),
                    None => format!("failed during {what}: {}", panic_message(&*panic)),
                };
                self.fail(why);
                None
            }
        }
    }

    fn fail(&mut self, why: String) {
        eprintln!("{}: missing from now on: {why}", self.label);
        self.stop();
        self.missing = Some(format!("missing: {why}"));
    }

    /// The results of `workload` if every round has one.
    fn complete(&self, workload: usize, rounds: usize) -> Option<&[T]> {
        let v = &self.results[workload];
        (v.len() == rounds).then_some(v.as_slice())
    }

    /// Stops the server (the results stay), keeping what its log reported.
    fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            self.log_note = server.log_note();
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// One wrk run, the server's CPU time over it, and the open-at-once check after it.
struct HttpSample {
    wrk: WrkResult,
    cpu_per_request: Duration,
    /// Of N connections opened at once (N = wrk's connections), how many got their response.
    answered: usize,
    /// Peak thread count of the server process during the run (sampled every 20 ms; nginx: its
    /// worker); `None` for an in-process baseline.
    peak_threads: Option<u64>,
}

fn http_sample(server: &Server, connections: u32, seconds: u64) -> HttpSample {
    let before = server.cpu();
    let wrk = run_wrk(server.port(), connections, seconds, &server.status_path());
    let cpu = server.cpu().since(&before);
    let answered = answered_at_once(server.port(), connections as usize);
    HttpSample {
        cpu_per_request: Duration::from_secs_f64(cpu.max(0.0) / wrk.requests.max(1) as f64),
        peak_threads: server.pid().map(|_| wrk.peak_threads),
        wrk,
        answered,
    }
}

/// Opens `n` connections to 127.0.0.1:`port` and keeps them all open, sends one keep-alive
/// `GET /` on each, then reads each response; returns how many got a complete 200 hello response
/// within [`common::WAIT`] in all.
fn answered_at_once(port: u16, n: usize) -> usize {
    let deadline = Instant::now() + common::WAIT;
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let mut streams: Vec<TcpStream> = (0..n)
        .filter_map(|_| TcpStream::connect_timeout(&common::local(port), remaining()).ok())
        .collect();
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    streams.retain_mut(|s| s.set_nodelay(true).is_ok() && s.write_all(request).is_ok());
    let mut answered = 0;
    for stream in &mut streams {
        let mut response = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let left = remaining();
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => response.extend_from_slice(&buf[..k]),
            }
            let text = String::from_utf8_lossy(&response);
            if text.contains("Hello, world!\n") {
                answered += usize::from(text.starts_with("HTTP/1.1 200"));
                break;
            }
        }
    }
    answered
}

/// One WebSocket workload and the server's CPU time over it.
struct WsSample {
    run: Run,
    cpu_per_message: Duration,
}

fn ws_sample(server: &Server, workload: usize) -> WsSample {
    let before = server.cpu();
    let (run, messages) = if workload == 0 {
        (sequential(server.port()), SEQUENTIAL_MESSAGES)
    } else {
        (concurrent(server.port()), CLIENTS * CLIENT_MESSAGES)
    };
    let cpu = server.cpu().since(&before);
    WsSample {
        run,
        cpu_per_message: Duration::from_secs_f64(cpu.max(0.0) / messages as f64),
    }
}

/// Checks one `GET /` (with `Connection: close`) answers 200, `Content-Type: text/plain` and the
/// hello body; returns the response head, for the report.
fn check_hello(port: u16) -> Result<String, String> {
    let response = catch_unwind(|| common::http_get_close(port))
        .map_err(|panic| format!("GET / failed: {}", panic_message(&*panic)))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let content_type = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("content-type") && value.trim() == "text/plain"
        })
    });
    if head.starts_with("HTTP/1.1 200") && content_type && body.contains("Hello, world!\n") {
        Ok(head.to_string())
    } else {
        Err(format!("unexpected response to GET /: {response:?}"))
    }
}

/// Starts a server with `start` and checks its hello response; records the response head.
fn start_checked(
    start: Result<Server, String>,
    heads: &mut Vec<(String, String)>,
    label: &str,
) -> Result<Server, String> {
    let server = start?;
    let head = check_hello(server.port())?;
    heads.push((label.to_string(), head));
    Ok(server)
}

// ---------------------------------------------------------------------------------------------
// Report helpers

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn socket_errors(v: &[HttpSample]) -> String {
    let mut sum = [0u64; 4];
    for s in v {
        for (e, x) in sum.iter_mut().zip(s.wrk.socket_errors) {
            *e += x;
        }
    }
    if sum == [0; 4] {
        "0".into()
    } else {
        format!(
            "connect {}, read {}, write {}, timeout {}",
            sum[0], sum[1], sum[2], sum[3]
        )
    }
}

/// The label, `ccserve` in bold for the reference row.
fn row_label(label: &str, reference: bool) -> String {
    if reference {
        format!("**{label}** (reference)")
    } else {
        label.to_string()
    }
}

fn main() {
    common::wrk::require();
    let seconds = common::env_knob("CCSERVE_BENCH_SECONDS", 5);
    let rounds = common::rounds();
    let machine = common::machine();

    let lune = find_lune();
    let nginx = find_nginx();
    let luahttp = probe_luahttp();
    match &lune {
        Ok((bin, version)) => eprintln!("Lune: {version} ({})", bin.display()),
        Err(why) => eprintln!("Lune: missing ({why})"),
    }
    match &nginx {
        Ok((bin, version, modules)) => eprintln!(
            "nginx: {version} ({}), modules: {}",
            bin.display(),
            per_round(modules, |m| m.display().to_string())
        ),
        Err(why) => eprintln!("nginx: missing ({why})"),
    }
    match &luahttp {
        Ok(version) => eprintln!("real lua-http: {version}"),
        Err(why) => eprintln!("real lua-http: missing ({why})"),
    }
    let lune_version = lune.as_ref().map(|(_, v)| v.clone()).ok();
    let nginx_version = nginx.as_ref().map(|(_, v, _)| v.clone()).ok();

    // ---- HTTP ----
    let mut heads: Vec<(String, String)> = Vec::new();
    let http_labels = [
        "ccserve, CraftOS API (`examples/hello.lua`)".to_string(),
        "ccserve, lua-http API (`examples/luahttp_hello.lua`)".to_string(),
        format!(
            "{} (`{LUNE_HELLO}`)",
            lune_version.clone().unwrap_or_else(|| "Lune".into())
        ),
        format!("real lua-http 0.4 (`{LUA} {LUAHTTP_HELLO}`)"),
        format!(
            "{} + ngx_http_lua, 1 worker (`content_by_lua_block`)",
            nginx_version.clone().unwrap_or_else(|| "nginx".into())
        ),
        "raw tiny_http 0.12 (in-process, no Lua)".to_string(),
    ];
    let http_servers = [
        start_checked(start_ccserve(HELLO), &mut heads, &http_labels[0]),
        start_checked(start_ccserve(LUAHTTP_HELLO), &mut heads, &http_labels[1]),
        start_checked(start_lune(&lune, LUNE_HELLO), &mut heads, &http_labels[2]),
        start_checked(
            start_luahttp(&luahttp, LUAHTTP_HELLO),
            &mut heads,
            &http_labels[3],
        ),
        start_checked(
            Nginx::start(&nginx).map(Server::Nginx),
            &mut heads,
            &http_labels[4],
        ),
        start_checked(
            Ok(Server::TinyHttp(TinyHttp::start())),
            &mut heads,
            &http_labels[5],
        ),
    ];
    let mut http: Vec<Contender<HttpSample>> = http_labels
        .iter()
        .zip(http_servers)
        .enumerate()
        .map(|(i, (label, server))| Contender::new(label.clone(), i < 2, server, CONNECTIONS.len()))
        .collect();
    for contender in &http {
        if let Some(why) = &contender.missing {
            eprintln!("{}: {why}", contender.label);
        }
    }
    let n = http.len();
    for (c, &connections) in CONNECTIONS.iter().enumerate() {
        for round in 0..rounds {
            for i in 0..n {
                let contender = &mut http[(round + i) % n];
                let what = format!("the c={connections} run of round {}", round + 1);
                let label = contender.label.clone();
                if let Some(s) =
                    contender.run(c, &what, |server| http_sample(server, connections, seconds))
                {
                    eprintln!(
                        "c={connections} round {}/{rounds} {label}: {:>9} req/s, p50 {} ms, p99 {} ms, CPU {} µs/req, {}/{connections} answered at once, non-2xx {}, socket errors {}",
                        round + 1,
                        thousands(s.wrk.requests_per_sec),
                        ms(s.wrk.p50),
                        ms(s.wrk.p99),
                        us(s.cpu_per_request),
                        s.answered,
                        s.wrk.non_2xx,
                        socket_errors(std::slice::from_ref(s)),
                    );
                }
            }
        }
    }
    for contender in &mut http {
        contender.stop();
    }

    // ---- WebSocket ----
    let ws_names = [
        format!("1 client × {}", thousands(SEQUENTIAL_MESSAGES as f64)),
        format!(
            "{CLIENTS} clients × {} at once",
            thousands(CLIENT_MESSAGES as f64)
        ),
    ];
    let mut ws: Vec<Contender<WsSample>> = vec![
        Contender::new(
            "ccserve, CraftOS API (`examples/ws_echo.lua`)".into(),
            true,
            start_ccserve(WS_ECHO),
            2,
        ),
        Contender::new(
            "ccserve, lua-http API (`examples/luahttp_ws_echo.lua`)".into(),
            true,
            start_ccserve(LUAHTTP_WS_ECHO),
            2,
        ),
        Contender::new(
            format!(
                "{} (`{LUNE_WS_ECHO}`)",
                lune_version.clone().unwrap_or_else(|| "Lune".into())
            ),
            false,
            start_lune(&lune, LUNE_WS_ECHO),
            2,
        ),
        Contender::new(
            format!("real lua-http 0.4 (`{LUA} {LUAHTTP_WS_ECHO}`)"),
            false,
            start_luahttp(&luahttp, LUAHTTP_WS_ECHO),
            2,
        ),
        Contender::not_measured(
            format!(
                "{} + ngx_http_lua",
                nginx_version.clone().unwrap_or_else(|| "nginx".into())
            ),
            "nginx is HTTP-only in this comparison",
            2,
        ),
        Contender::new(
            "raw tungstenite 0.30 (in-process, no Lua)".into(),
            false,
            Ok(Server::Tungstenite(TungsteniteEcho::start())),
            2,
        ),
    ];
    for contender in &ws {
        if let Some(why) = &contender.missing {
            eprintln!("{}: {why}", contender.label);
        }
    }
    let n = ws.len();
    for round in 0..rounds {
        for i in 0..n {
            let contender = &mut ws[(round + i) % n];
            for (w, name) in ws_names.iter().enumerate() {
                let what = format!("the {name} workload of round {}", round + 1);
                let label = contender.label.clone();
                if let Some(s) = contender.run(w, &what, |server| ws_sample(server, w)) {
                    eprintln!(
                        "ws {name} round {}/{rounds} {label}: {:>7} msg/s, p50 {} µs, p99 {} µs, CPU {} µs/msg",
                        round + 1,
                        thousands(s.run.messages_per_sec),
                        us(s.run.p50),
                        us(s.run.p99),
                        us(s.cpu_per_message),
                    );
                }
            }
        }
    }
    for contender in &mut ws {
        contender.stop();
    }
    let load_end = common::load_average();

    // ---- report ----
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### Peers: ccserve vs Lune, real lua-http 0.4, nginx + ngx_http_lua, raw tiny_http, raw tungstenite\n"
    );
    let _ = writeln!(
        md,
        "Machine: {machine}; load average at end {load_end}. {}. The servers, wrk and the \
         WebSocket clients share the machine's cores; every server listens on 127.0.0.1.\n",
        common::binary()
    );
    let _ = writeln!(md, "Peers on this machine:\n");
    let _ = writeln!(
        md,
        "- Lune: {}",
        match &lune {
            Ok((bin, version)) => format!("{version} (`{}`)", bin.display()),
            Err(why) => format!("**missing** ({})", cell(why)),
        }
    );
    let _ = writeln!(
        md,
        "- real lua-http: {}",
        match &luahttp {
            Ok(version) => format!("{version} (`{LUA}`, Debian's lua-http)"),
            Err(why) => format!("**missing** ({})", cell(why)),
        }
    );
    let _ = writeln!(
        md,
        "- nginx: {}",
        match &nginx {
            Ok((bin, version, modules)) => format!(
                "{version} (`{}`), ngx_http_lua {}, modules loaded: {}",
                bin.display(),
                nginx_lua_package_version()
                    .map_or("(package version unknown)".into(), |v| format!(
                        "from libnginx-mod-http-lua {v}"
                    )),
                if modules.is_empty() {
                    "none (built in?)".to_string()
                } else {
                    per_round(modules, |m| format!("`{}`", m.display()))
                }
            ),
            Err(why) => format!("**missing** ({})", cell(why)),
        }
    );
    let _ = writeln!(
        md,
        "- raw tiny_http 0.12 and raw tungstenite 0.30: in this process (`benches/common/baseline.rs`)"
    );

    let _ = writeln!(
        md,
        "\n#### HTTP hello world\n\n`wrk --latency -t1 -c1` / `-t2 -c32` / `-t2 -c256` \
         (keep-alive), {seconds} s per run, {rounds} round(s) (each round runs every server once, \
         one after the other, the order rotating by round); medians over rounds. CPU = the \
         server's user + system time over the run / requests completed (processes: the whole \
         process tree from `/proc/PID/stat`, nginx's master and worker together; in-process \
         baselines: their own threads only). Answered at once = after each run, N connections \
         (N = wrk's) opened and held together, one `GET /` on each: how many got their response \
         (the lowest of the rounds). Ratios against ccserve's CraftOS API row: ccserve / this \
         for req/s (above 1: ccserve is faster), this / ccserve for p99 and CPU per request \
         (above 1: this peer is slower / costs more).\n"
    );
    let _ = writeln!(
        md,
        "| connections | server | req/s | req/s per round | p50 / p99 ms | CPU µs / request | ccserve / this, req/s | this / ccserve, p99 | this / ccserve, CPU per request | socket errors | non-2xx | answered at once | peak threads (per round) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (c, &connections) in CONNECTIONS.iter().enumerate() {
        let reference = http[0].complete(c, rounds);
        let ref_rps = reference.map(|v| median_of(v, |s| s.wrk.requests_per_sec));
        let ref_p99 = reference.map(|v| median_duration(v, |s| s.wrk.p99).as_secs_f64());
        let ref_cpu = reference.map(|v| median_duration(v, |s| s.cpu_per_request).as_secs_f64());
        for (k, contender) in http.iter().enumerate() {
            let label = row_label(&contender.label, k == 0);
            let Some(v) = contender.complete(c, rounds) else {
                let _ = writeln!(
                    md,
                    "| {connections} | {label} | {} | {} | | | | | | | | | |",
                    cell(contender.missing.as_deref().unwrap_or("missing: no result")),
                    per_round(&contender.results[c], |s| thousands(s.wrk.requests_per_sec)),
                );
                continue;
            };
            let rps = median_of(v, |s| s.wrk.requests_per_sec);
            let p99 = median_duration(v, |s| s.wrk.p99);
            let cpu = median_duration(v, |s| s.cpu_per_request);
            let (r_rps, r_p99, r_cpu) = if k == 0 {
                ("–".to_string(), "–".to_string(), "–".to_string())
            } else {
                (
                    ratio(ref_rps, Some(rps)),
                    ratio(Some(p99.as_secs_f64()), ref_p99),
                    ratio(Some(cpu.as_secs_f64()), ref_cpu),
                )
            };
            let answered = v.iter().map(|s| s.answered).min().unwrap_or(0);
            let _ = writeln!(
                md,
                "| {connections} | {label} | {} | {} | {} / {} | {} | {r_rps} | {r_p99} | {r_cpu} | {} | {} | {answered} / {connections} | {} |",
                thousands(rps),
                per_round(v, |s| thousands(s.wrk.requests_per_sec)),
                ms(median_duration(v, |s| s.wrk.p50)),
                ms(p99),
                us(cpu),
                socket_errors(v),
                v.iter().map(|s| s.wrk.non_2xx).sum::<u64>(),
                per_round(v, |s| s
                    .peak_threads
                    .map_or("in-process".into(), |n| n.to_string())),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nResponse heads to `GET /` with `Connection: close` (checked before measuring: 200, \
         `Content-Type: text/plain`, body `Hello, world!\\n`; dates elided):\n"
    );
    let _ = writeln!(md, "| server | response head |\n|---|---|");
    for (label, head) in &heads {
        let head: Vec<String> = head
            .lines()
            .map(|line| match line.split_once(':') {
                Some((name, _)) if name.eq_ignore_ascii_case("date") => format!("{name}: …"),
                _ => line.to_string(),
            })
            .collect();
        let _ = writeln!(md, "| {label} | `{}` |", cell(&head.join(" / ")));
    }

    let _ = writeln!(
        md,
        "\n#### WebSocket echo\n\n32-byte text messages, each sent after the previous echo \
         arrived; the compiled tungstenite client of `benches/ws.rs` (TCP_NODELAY), {WARMUP} \
         warm-up messages (1 client) or {CLIENT_WARMUP} per client (50 clients) first. {rounds} \
         round(s) (every server each round, the order rotating by round); medians over rounds. \
         CPU per message = the server's CPU time over the workload (handshakes and warm-up \
         included) / the measured messages; for the in-process baseline, its own threads only. \
         Finish = each client's finish time since the common start, in the round with the \
         median msgs/s. Ratios against ccserve's CraftOS API row, as above. nginx is HTTP-only \
         in this comparison.\n"
    );
    let _ = writeln!(
        md,
        "| workload | server | msgs/s | msgs/s per round | round trip p50 / p99 µs | CPU µs / message | ccserve / this, msgs/s | this / ccserve, p99 | this / ccserve, CPU per message | 50 clients: finish min / median / max ms |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for (w, name) in ws_names.iter().enumerate() {
        let reference = ws[0].complete(w, rounds);
        let ref_rate = reference.map(|v| median_of(v, |s| s.run.messages_per_sec));
        let ref_p99 = reference.map(|v| median_duration(v, |s| s.run.p99).as_secs_f64());
        let ref_cpu = reference.map(|v| median_duration(v, |s| s.cpu_per_message).as_secs_f64());
        for (k, contender) in ws.iter().enumerate() {
            let label = row_label(&contender.label, k == 0);
            let Some(v) = contender.complete(w, rounds) else {
                let _ = writeln!(
                    md,
                    "| {name} | {label} | {} | {} | | | | | | |",
                    cell(contender.missing.as_deref().unwrap_or("missing: no result")),
                    per_round(&contender.results[w], |s| thousands(s.run.messages_per_sec)),
                );
                continue;
            };
            let rate = median_of(v, |s| s.run.messages_per_sec);
            let p99 = median_duration(v, |s| s.run.p99);
            let cpu = median_duration(v, |s| s.cpu_per_message);
            let (r_rate, r_p99, r_cpu) = if k == 0 {
                ("–".to_string(), "–".to_string(), "–".to_string())
            } else {
                (
                    ratio(ref_rate, Some(rate)),
                    ratio(Some(p99.as_secs_f64()), ref_p99),
                    ratio(Some(cpu.as_secs_f64()), ref_cpu),
                )
            };
            let _ = writeln!(
                md,
                "| {name} | {label} | {} | {} | {} / {} | {} | {r_rate} | {r_p99} | {r_cpu} | {} |",
                thousands(rate),
                per_round(v, |s| thousands(s.run.messages_per_sec)),
                us(median_duration(v, |s| s.run.p50)),
                us(p99),
                us(cpu),
                finish_times(v),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nWhat the peer processes' logs reported (taken when each was stopped):\n"
    );
    let _ = writeln!(
        md,
        "| part | server | log | reported | first |\n|---|---|---|---|---|"
    );
    for (part, notes) in [
        (
            "HTTP",
            http.iter()
                .map(|c| (&c.label, &c.log_note))
                .collect::<Vec<_>>(),
        ),
        (
            "WebSocket",
            ws.iter().map(|c| (&c.label, &c.log_note)).collect(),
        ),
    ] {
        for (label, note) in notes {
            let Some(note) = note else { continue };
            let shown = note
                .log
                .strip_prefix(common::repo_root())
                .unwrap_or(&note.log)
                .display()
                .to_string();
            let _ = writeln!(
                md,
                "| {part} | {label} | `{shown}` | {} {} | {} |",
                note.count,
                note.what,
                note.first.as_deref().map_or(String::new(), |first| format!(
                    "`{}`",
                    cell(&first.replace('`', "'"))
                )),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nHow they serve (peak threads above): ccserve serves each connection on a thread of \
         its own and runs the script on one Lua thread; Lune runs the Luau handlers on its main \
         thread (async, with an I/O thread beside it); real lua-http runs on cqueues in one \
         thread; nginx runs one single-threaded worker process (event loop); the raw baselines \
         use one thread per connection and no Lua. A server that leaves some connections waiting \
         while it serves others (tiny_http 0.12's thread pool does) shows fewer answered at once \
         than connections, and its req/s then comes from fewer connections than wrk opened."
    );
    common::publish("peers", &md);

    let failed: Vec<&str> = http
        .iter()
        .map(|c| (c.ccserve, &c.missing, &c.label))
        .chain(ws.iter().map(|c| (c.ccserve, &c.missing, &c.label)))
        .filter(|(ccserve, missing, _)| *ccserve && missing.is_some())
        .map(|(_, _, label)| label.as_str())
        .collect();
    if !failed.is_empty() {
        eprintln!("error: ccserve rows without results: {}", failed.join("; "));
        std::process::exit(1);
    }
}

/// Min / median / max client finish time (ms) of the run with the median msgs/s; empty for the
/// sequential workload.
fn finish_times(v: &[WsSample]) -> String {
    common::ws_client::finish_times(v.iter().map(|s| &s.run))
}
