//! Helpers shared by the benchmarks in `benches/`: start the real `ccserve` binary (built with the
//! bench profile, i.e. release settings) on a free 127.0.0.1 port, read its memory and thread
//! count from `/proc`, small statistics, the environment knobs, and writing the markdown results.
//! CPU time of processes, process trees and named threads of this process, from `/proc`.
//! Submodules: [`wrk`] (running and parsing `wrk --latency`), [`ws_client`] (the compiled
//! WebSocket echo client and its workloads), [`baseline`] (the in-process tiny_http and
//! tungstenite baselines) and [`process`] (a server process other than ccserve: real lua-http,
//! Lune, nginx).
//!
//! Every wait here is a bounded poll of a condition; nothing sleeps to synchronise.

#![allow(dead_code)]

pub mod baseline;
pub mod process;
pub mod wrk;
pub mod ws_client;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bound for anything a loaded 2-core machine should do quickly.
pub const WAIT: Duration = Duration::from_secs(20);

/// A duration in milliseconds, three decimals (as wrk's latencies are reported).
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// A duration in microseconds, one decimal (CPU per request or message).
pub fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// The repository root (where `examples/` lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free TCP port on 127.0.0.1 (bound, read, released; the caller passes it to ccserve).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// The socket address of `port` on 127.0.0.1.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A TCP connection to 127.0.0.1:`port` with TCP_NODELAY and read/write timeouts of [`WAIT`], so
/// a server that stops answering fails the bench instead of hanging it.
pub fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect_timeout(&local(port), WAIT)
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    stream.set_nodelay(true).expect("set TCP_NODELAY");
    stream
        .set_read_timeout(Some(WAIT))
        .expect("set read timeout");
    stream
        .set_write_timeout(Some(WAIT))
        .expect("set write timeout");
    stream
}

/// The ccserve binary the benches run: `$CCSERVE_BENCH_BIN` if set (another build to compare, e.g.
/// an older commit or a static musl build), else the one cargo built for this bench.
pub fn ccserve_bin() -> PathBuf {
    match std::env::var_os("CCSERVE_BENCH_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_ccserve")),
    }
}

/// A running `ccserve` process, killed (and reaped) when dropped, on every exit path.
pub struct Ccserve {
    child: Child,
    pub port: u16,
}

impl Ccserve {
    /// Starts `ccserve --bind 127.0.0.1 <script> <port>` on a free port (the example scripts take
    /// their port as the first argument) and waits until the port accepts connections.
    pub fn start(script: &str) -> Ccserve {
        Ccserve::start_with_args(script, &[])
    }

    /// As [`Ccserve::start`], with `args` passed to the script after the port:
    /// `ccserve --bind 127.0.0.1 <script> <port> <args...>`.
    pub fn start_with_args(script: &str, args: &[&str]) -> Ccserve {
        Ccserve::start_with_flags(&[], script, args)
    }

    /// As [`Ccserve::start_with_args`], with `flags` passed to ccserve before the script:
    /// `ccserve --bind 127.0.0.1 <flags...> <script> <port> <args...>` (e.g. `--nodemcu`).
    pub fn start_with_flags(flags: &[&str], script: &str, args: &[&str]) -> Ccserve {
        let port = free_port();
        let script_path = repo_root().join(script);
        let bin = ccserve_bin();
        let child = Command::new(&bin)
            .arg("--bind")
            .arg("127.0.0.1")
            .args(flags)
            .arg(&script_path)
            .arg(port.to_string())
            .args(args)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut server = Ccserve { child, port };
        server.wait_accepting();
        server
    }

    /// The process id (for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls until the port accepts a connection; panics if ccserve exits or [`WAIT`] passes.
    fn wait_accepting(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll ccserve") {
                panic!("ccserve exited before accepting connections: {status}");
            }
            if TcpStream::connect_timeout(&local(self.port), Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ccserve did not accept connections on port {} within {WAIT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `Some(why)` if the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        Some(format!("ccserve exited ({status})"))
    }

    /// The process's status from `/proc`.
    pub fn status(&self) -> ProcStatus {
        ProcStatus::read(&format!("/proc/{}/status", self.pid()))
    }
}

impl Drop for Ccserve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fields of `/proc/PID/status` the benches report.
#[derive(Clone, Copy, Debug)]
pub struct ProcStatus {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// The anonymous part of it (heap, stacks), KiB; the rest is file pages (the binary's and the
    /// shared libraries' code, shared with every other process that maps the same files).
    pub rss_anon_kib: u64,
    pub threads: u64,
}

impl ProcStatus {
    /// Reads `path` (`/proc/PID/status` or `/proc/self/status`).
    pub fn read(path: &str) -> ProcStatus {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {path}"))
        };
        ProcStatus {
            rss_kib: field("VmRSS:"),
            rss_anon_kib: field("RssAnon:"),
            threads: field("Threads:"),
        }
    }
}

/// The fields of `/proc/PID/stat` (or `/proc/self/task/TID/stat`) the benches use; times in
/// seconds.
#[derive(Clone, Debug)]
pub struct Stat {
    /// The command name (`comm`; for a thread, its name).
    pub comm: String,
    pub ppid: u32,
    /// `utime` + `stime`: CPU time of the process (all its threads, ended ones included) or of
    /// the thread.
    pub cpu: f64,
    /// `cutime` + `cstime`: CPU time of the children the process has waited for.
    pub children_cpu: f64,
}

impl Stat {
    /// Reads and parses `path`; `None` if it cannot be read (the process or thread is gone) or
    /// parsed.
    pub fn read(path: &str) -> Option<Stat> {
        let text = std::fs::read_to_string(path).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count from after it.
        // Then field 3 (state) is index 0, ppid (4) index 1, utime (14) index 11, stime (15)
        // index 12, cutime (16) index 13, cstime (17) index 14.
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let comm = text.get(open + 1..close)?.to_string();
        let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
        let field = |i: usize| -> Option<u64> { fields.get(i)?.parse().ok() };
        let tick = clock_ticks_per_second();
        Some(Stat {
            comm,
            ppid: field(1)? as u32,
            cpu: (field(11)? + field(12)?) as f64 / tick,
            children_cpu: (field(13)? + field(14)?) as f64 / tick,
        })
    }
}

/// CPU time (user + system, all threads, in seconds) the process `pid` has used so far, from
/// `utime` and `stime` of `/proc/PID/stat`, in clock ticks (`getconf CLK_TCK`, 100 on Linux).
pub fn cpu_seconds(pid: u32) -> f64 {
    let path = format!("/proc/{pid}/stat");
    Stat::read(&path)
        .unwrap_or_else(|| panic!("cannot read or parse {path}"))
        .cpu
}

/// `pid` and all its descendants alive now (children, their children, …), from the `ppid` of
/// every `/proc/N/stat`; `pid` first.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(stat) = Stat::read(&format!("/proc/{n}/stat")) {
                parents.push((n, stat.ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|&&(_, ppid)| ppid == parent)
                .map(|&(n, _)| n),
        );
        i += 1;
    }
    tree
}

/// CPU time (s) used so far by the process `pid` and its descendants: `utime` + `stime` +
/// `cutime` + `cstime` of each process of [`process_tree`] (the last two count the children each
/// has already waited for, so a child that ended is still counted, and none twice). For a server
/// of several processes (nginx's master and worker). Panics if `pid` itself is gone.
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    let root = format!("/proc/{pid}/stat");
    let mut total = 0.0;
    for (i, n) in process_tree(pid).into_iter().enumerate() {
        match Stat::read(&format!("/proc/{n}/stat")) {
            Some(stat) => total += stat.cpu + stat.children_cpu,
            None if i == 0 => panic!("cannot read or parse {root}"),
            None => {} // a descendant that has just ended: its parent counts it once it waits
        }
    }
    total
}

/// CPU time (s) of the threads of this process whose name starts with a prefix, per thread id
/// (see [`threads_cpu`]).
#[derive(Clone, Debug, Default)]
pub struct ThreadsCpu(std::collections::HashMap<u32, f64>);

impl ThreadsCpu {
    /// The sum over the threads.
    pub fn total(&self) -> f64 {
        self.0.values().sum()
    }

    /// CPU time used since `before` by these threads: for each thread listed now, its time
    /// minus its time in `before` (all of it for a thread created since). A thread that ended in
    /// between is not counted at all.
    pub fn since(&self, before: &ThreadsCpu) -> f64 {
        self.0
            .iter()
            .map(|(tid, now)| now - before.0.get(tid).copied().unwrap_or(0.0))
            .sum()
    }
}

/// The CPU time of each thread of this process whose name (`comm`) starts with `prefix`: the
/// time on CPU in nanoseconds from `/proc/self/task/TID/schedstat` (the clock of
/// `CLOCK_THREAD_CPUTIME_ID`), else `utime` + `stime` of its `stat`. Not `stat` first: a
/// thread's times there are whole clock ticks (10 ms), and summing hundreds of short-lived
/// connection threads, each rounded down, loses most of their time.
pub fn threads_cpu(prefix: &str) -> ThreadsCpu {
    let mut times = std::collections::HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc/self/task") {
        for entry in entries.flatten() {
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(stat) = Stat::read(&format!("/proc/self/task/{tid}/stat")) else {
                continue;
            };
            if !stat.comm.starts_with(prefix) {
                continue;
            }
            let on_cpu_ns = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok());
            let seconds = on_cpu_ns.map_or(stat.cpu, |ns| ns as f64 / 1e9);
            times.insert(tid, seconds);
        }
    }
    ThreadsCpu(times)
}

/// CPU time (s) the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`, nanosecond resolution).
pub fn this_thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    } else {
        0.0
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the times in `/proc/PID/stat`.
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Polls the thread count of `/proc/PID/status` at `path` until `done(threads)` holds or
/// `timeout` passes; returns `Ok(threads)` or `Err(last threads seen)`.
pub fn wait_threads(path: &str, timeout: Duration, done: impl Fn(u64) -> bool) -> Result<u64, u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let threads = ProcStatus::read(path).threads;
        if done(threads) {
            return Ok(threads);
        }
        if Instant::now() >= deadline {
            return Err(threads);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls until the thread count has not changed for 300 ms (threads of closed connections have
/// exited); returns it.
pub fn settled_threads(path: &str) -> u64 {
    let deadline = Instant::now() + WAIT;
    let mut last = ProcStatus::read(path).threads;
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = ProcStatus::read(path).threads;
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(300) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "thread count of {path} did not settle"
        );
    }
}

/// Sends one `GET /` with `Connection: close` and returns the whole response.
pub fn http_get_close(port: u16) -> String {
    let mut stream = connect(port);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("send GET");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response to GET /");
    String::from_utf8_lossy(&response).into_owned()
}

/// An environment knob: a positive integer, else `default`.
pub fn env_knob(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => match value.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name}={value:?}: expected a positive integer"),
        },
        Err(_) => default,
    }
}

/// `CCSERVE_BENCH_ROUNDS` (default 3).
pub fn rounds() -> usize {
    env_knob("CCSERVE_BENCH_ROUNDS", 3) as usize
}

/// Median of `values` (the mean of the two middle ones for an even count); 0 if empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Median of `f` over `v`.
pub fn median_of<T>(v: &[T], f: impl Fn(&T) -> f64) -> f64 {
    median(&v.iter().map(f).collect::<Vec<_>>())
}

/// Median of the durations `f` over `v`.
pub fn median_duration<T>(v: &[T], f: impl Fn(&T) -> Duration) -> Duration {
    Duration::from_secs_f64(median_of(v, |x| f(x).as_secs_f64()))
}

/// `f` of each element, comma-separated (one value per round).
pub fn per_round<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
    v.iter().map(f).collect::<Vec<_>>().join(", ")
}

/// `a / b` to two decimals, or "–" if either is missing (or `b` is 0).
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

/// The `q`-quantile (0..=1, nearest rank) of `sorted`, which must be sorted ascending.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    assert!(!sorted.is_empty(), "quantile of no samples");
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Formats a count with thousands separators (`12,345`).
pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line describing the machine: cores, CPU model, kernel.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown kernel".into());
    let load = load_average();
    format!("{cores} cores, {cpu}, Linux {kernel}, load average at start {load}")
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg` (`"0.52 0.61 0.70"`).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One line naming the ccserve binary under test and its size.
pub fn binary() -> String {
    let bin = ccserve_bin();
    let size = std::fs::metadata(&bin).map_or(0, |m| m.len());
    let shown = bin
        .strip_prefix(repo_root())
        .map_or_else(|_| bin.display().to_string(), |p| p.display().to_string());
    format!(
        "ccserve binary: `{shown}`, {} bytes",
        thousands(size as f64)
    )
}

/// `<target dir>/bench-results` (created if missing), where the target dir is
/// `$CARGO_TARGET_DIR`, else `./target` of the repository.
pub fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("bench-results");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Prints `markdown` and writes it to `<target dir>/bench-results/<name>.md`, where the target
/// dir is `$CARGO_TARGET_DIR`, else `./target` of the repository.
pub fn publish(name: &str, markdown: &str) {
    print!("\n{markdown}");
    let dir = results_dir();
    let path = dir.join(format!("{name}.md"));
    std::fs::write(&path, markdown).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("\n(written to {})", path.display());
}
