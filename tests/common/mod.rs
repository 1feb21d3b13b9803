//! Helpers shared by the integration tests: start the real `ccserve` binary with a script, and
//! talk to it over real TCP on 127.0.0.1.
//!
//! Scripts announce their port by printing `LISTENING <port>` (use `http.addListener(0)`, which
//! returns the bound port). Every wait here is bounded; nothing sleeps to synchronise.

#![allow(dead_code)]

pub mod civil;

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Generous bound for anything a loaded 2-core machine should do quickly.
pub const WAIT: Duration = Duration::from_secs(20);

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ccserve"))
}

/// Writes `source` to a fresh file under the test tmpdir and returns its path.
pub fn script_file(source: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!(
        "script-{}-{}.lua",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, source).expect("write test script");
    path
}

/// A running `ccserve` process. Killed when dropped.
pub struct Server {
    child: Child,
    /// The port the script printed with `LISTENING <port>` (0 if it printed none).
    pub port: u16,
    lines: Receiver<String>,
    stderr: Arc<Stderr>,
}

/// What the process wrote to stderr so far, and whether it has closed the pipe.
#[derive(Default)]
struct Stderr {
    state: Mutex<StderrState>,
    /// Notified on every line added and when the pipe closes.
    changed: Condvar,
}

#[derive(Default)]
struct StderrState {
    text: String,
    closed: bool,
}

impl Stderr {
    /// Waits until `done(state)` holds, the pipe closes, or `timeout` passes; returns the state.
    fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&StderrState) -> bool,
    ) -> MutexGuard<'_, StderrState> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        while !done(&state) && !state.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
        state
    }
}

impl Server {
    /// Starts `ccserve --bind 127.0.0.1 [extra...] SCRIPT` and waits for `LISTENING <port>`.
    pub fn start(source: &str, extra: &[&str]) -> Server {
        Server::start_env(source, extra, &[])
    }

    /// [`Server::start`] with extra environment variables for the child.
    pub fn start_env(source: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut server = Server::spawn_env(source, extra, &[], env);
        let line = server.line_starting("LISTENING ", WAIT).unwrap_or_else(|| {
            panic!(
                "script did not print LISTENING within {WAIT:?}; the process: {}; stderr:\n{}",
                process_report(server.pid()),
                server.stderr()
            )
        });
        server.port = line["LISTENING ".len()..]
            .trim()
            .parse()
            .expect("port number");
        server
    }

    /// Starts the binary without waiting for anything. `script_args` follow the script path.
    pub fn spawn(source: &str, extra: &[&str], script_args: &[&str]) -> Server {
        Server::spawn_env(source, extra, script_args, &[])
    }

    /// [`Server::spawn`] with extra environment variables for the child.
    pub fn spawn_env(
        source: &str,
        extra: &[&str],
        script_args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut args: Vec<OsString> = vec!["--bind".into(), "127.0.0.1".into()];
        args.extend(extra.iter().map(OsString::from));
        args.push(script_file(source).into());
        args.extend(script_args.iter().map(OsString::from));
        Server::spawn_exact_env(&args, env)
    }

    /// Starts `ccserve ARGS...` exactly as given (no implicit flags), without waiting.
    pub fn spawn_exact<S: AsRef<OsStr>>(args: &[S]) -> Server {
        Server::spawn_exact_env(args, &[])
    }

    /// [`Server::spawn_exact`] with extra environment variables for the child.
    pub fn spawn_exact_env<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(bin())
            .args(args)
            .env_remove("MALLOC_ARENA_MAX") // tests see the binary's own allocator setting
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ccserve");
        let stdout = child.stdout.take().expect("stdout");
        let stderr_pipe = child.stderr.take().expect("stderr");
        let lines = line_channel(stdout);
        let stderr = Arc::new(Stderr::default());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr_pipe);
            let mut buf = Vec::new();
            while reader
                .read_until(b'\n', &mut buf)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                let mut state = sink.state.lock().unwrap();
                state.text.push_str(&String::from_utf8_lossy(&buf));
                sink.changed.notify_all();
                buf.clear();
            }
            sink.state.lock().unwrap().closed = true;
            sink.changed.notify_all();
        });
        Server {
            child,
            port: 0,
            lines,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The next stdout line, waiting at most `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => Some(l),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Skips stdout lines until one starts with `prefix`.
    pub fn line_starting(&self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.next_line(left)?;
            if line.starts_with(prefix) {
                return Some(line);
            }
        }
    }

    /// Waits for a stdout line equal to `want`, failing on anything else first.
    pub fn expect_line(&self, want: &str) {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => assert_eq!(line, want),
            Err(e) => panic!("waiting for stdout line {want:?}: {e}"),
        }
    }

    /// All remaining stdout lines (call after the process exited).
    pub fn rest_of_stdout(&self) -> Vec<String> {
        let mut out = Vec::new();
        // Ends when the reader thread hits EOF and drops its sender.
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            out.push(line);
            if out.len() > 10_000 {
                break;
            }
        }
        out
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.state.lock().unwrap().text.clone()
    }

    /// Everything the process wrote to stderr, once it closed the pipe (waits at most `WAIT`).
    pub fn stderr_when_closed(&self) -> String {
        let state = self.stderr.wait_until(WAIT, |_| false);
        assert!(
            state.closed,
            "stderr not closed within {WAIT:?}; so far:\n{}",
            state.text
        );
        state.text.clone()
    }

    /// The first stderr line containing `needle`, waiting at most `timeout` (`None` if stderr
    /// closed or the time ran out without one).
    pub fn stderr_line_containing(&self, needle: &str, timeout: Duration) -> Option<String> {
        let find = |state: &StderrState| {
            state
                .text
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_string)
        };
        find(&self.stderr.wait_until(timeout, |s| find(s).is_some()))
    }

    /// Waits for the process to exit by itself, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Polling a child's exit status has no blocking-with-timeout form in std.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit code within `WAIT` (`None` if killed by a signal); fails if it does not exit.
    pub fn exit_code(&mut self) -> Option<i32> {
        match self.wait_exit(WAIT) {
            Some(status) => status.code(),
            None => panic!(
                "ccserve did not exit within {WAIT:?}; stderr so far:\n{}",
                self.stderr()
            ),
        }
    }

    /// Sends SIGINT (Ctrl+C) to the process.
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Sends SIGTERM to the process.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends signal `name` (e.g. `INT`) with `kill`; whether `kill` reported success.
    pub fn signal(&self, name: &str) -> bool {
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to 127.0.0.1:`port` with generous read/write timeouts.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    let _ = s.set_nodelay(true);
    s
}

/// A connection to 127.0.0.1:`port` whose receive buffer is asked to be `bytes` before it
/// connects (so the server's writes fill it quickly), with the usual read timeout.
pub fn connect_with_small_window(port: u16, bytes: usize) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(bytes).unwrap();
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    /// The whole status line, e.g. `HTTP/1.1 404 Not Found`.
    pub status_line: String,
    /// The status code.
    pub status: u16,
    /// Header fields in order, as sent.
    pub headers: Vec<(String, String)>,
    /// The body (by Content-Length, chunked, or to EOF).
    pub body: Vec<u8>,
}

impl Response {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `stream`; `head_only` for a response to HEAD.
/// Returns `None` if the connection closed before a status line.
pub fn read_response(stream: &mut impl Read, head_only: bool) -> Option<Response> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) => head.push(byte[0]),
            Err(e) => panic!("reading response head: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    let mut resp = Response {
        status_line,
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
        return Some(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().expect("content-length");
        let mut body = vec![0; len];
        stream.read_exact(&mut body).expect("response body");
        resp.body = body;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        resp.body = read_chunked(stream);
    } else {
        stream
            .read_to_end(&mut resp.body)
            .expect("response body to EOF");
    }
    Some(resp)
}

/// Reads a chunked body (streamed responses), strictly: any framing error fails the test.
fn read_chunked(stream: &mut impl Read) -> Vec<u8> {
    let line = |stream: &mut dyn Read| {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            stream.read_exact(&mut byte).expect("chunked body line");
            line.push(byte[0]);
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).expect("chunk line is text")
    };
    let mut body = Vec::new();
    loop {
        let size = usize::from_str_radix(&line(stream), 16).expect("chunk size in hex");
        if size == 0 {
            assert_eq!(line(stream), "", "no trailers expected");
            return body;
        }
        let start = body.len();
        body.resize(start + size, 0);
        stream.read_exact(&mut body[start..]).expect("chunk data");
        assert_eq!(line(stream), "", "CRLF after chunk data");
    }
}

/// Sends `request` bytes on a fresh connection and reads one response.
pub fn exchange(port: u16, request: &[u8]) -> Response {
    let mut s = connect(port);
    s.write_all(request).unwrap();
    read_response(&mut s, request.starts_with(b"HEAD ")).expect("a response")
}

/// `GET path` on a fresh connection.
pub fn get(port: u16, path: &str) -> Response {
    exchange(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Whether the peer closed `stream` (EOF or reset) within `timeout`; data read is discarded.
pub fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + timeout;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {
                if Instant::now() >= deadline {
                    return false;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// The lines a child process writes to `out`, read on a thread of their own as they come (the
/// channel closes when the child closes its end).
pub fn line_channel(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// A script serving an OS-chosen port with a Lua request handler body (`req`, `res` in scope)
/// inside `http.listen`. It prints `LISTENING <port>` once the port is bound (by wrapping
/// `http.addListener` for that one call), so a test never connects before the listener exists.
pub fn listen_script(handler: &str) -> String {
    listen_script_with(handler, "nil")
}

/// [`listen_script`] with `options`, a Lua expression passed as `http.listen`'s third argument
/// (`"{tls = true}"`).
pub fn listen_script_with(handler: &str, options: &str) -> String {
    format!(
        "local add = http.addListener\n\
         http.addListener = function(p, o)\n\
           local bound = add(p, o)\n\
           http.addListener = add\n\
           print('LISTENING ' .. bound)\n\
           return bound\n\
         end\n\
         http.listen(0, function(req, res)\n{handler}\nend, {options})\n"
    )
}

/// What `/proc` says of process `pid`, for a failure message: its command line (which shows
/// whether a child started by the tests ever became ccserve) and each thread's name, state and
/// the kernel function it waits in.
pub fn process_report(pid: u32) -> String {
    let read = |path: String| std::fs::read_to_string(path).unwrap_or_default();
    let cmdline = read(format!("/proc/{pid}/cmdline")).replace('\0', " ");
    let mut threads = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let dir = task.path().display().to_string();
            let stat = read(format!("{dir}/stat"));
            // The state follows the parenthesised name.
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').next())
                .unwrap_or("?")
                .to_string();
            threads.push(format!(
                "{} {state} {}",
                read(format!("{dir}/comm")).trim(),
                read(format!("{dir}/wchan")).trim()
            ));
        }
    }
    format!(
        "cmdline `{}`, threads [{}]",
        cmdline.trim(),
        threads.join("; ")
    )
}

/// Whether process `pid` runs under qemu-user (the ARM suites of `scripts/cross-test.sh`): its
/// `/proc/PID/maps` are then the emulator's, and a thread another thread has joined can stay
/// listed in `/proc/PID/task` for a while, because qemu wakes the joiner before the host thread
/// has exited.
pub fn under_emulator(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|exe| exe.to_string_lossy().contains("qemu"))
        .unwrap_or(false)
}

/// Waits (bounded) until `f()` is at most `limit`; returns the last value seen.
pub fn settles_to(limit: usize, f: impl Fn() -> usize) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = f();
        if v <= limit || Instant::now() >= deadline {
            return v;
        }
        // Threads end asynchronously (after their client closed, or after a join under qemu-user);
        // re-check shortly.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number of threads of process `pid` (from `/proc`; 0 if unreadable).
pub fn threads_of(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Threads:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The number of open file descriptors of process `pid` (from `/proc`; 0 if unreadable).
pub fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The resident set size of process `pid` in KiB (from `/proc`; 0 if unreadable).
pub fn rss_kib_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Reads until `needle` has arrived; returns everything read (fails if the peer closes first).
pub fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while !got.windows(needle.len()).any(|w| w == needle) {
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "closed before {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading: {e}; got {:?}", String::from_utf8_lossy(&got)),
        }
    }
    got
}

/// Everything until the peer closes (a reset counts as the end).
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => got,
        Err(e) => panic!("reading: {e}; got {:?}", String::from_utf8_lossy(&got)),
    }
}

/// Asserts nothing arrives on `stream` for `quiet` (no bytes, no close).
pub fn assert_quiet_for(stream: &mut TcpStream, quiet: Duration, what: &str) {
    stream.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut => {}
        Ok(0) => panic!("{what}: the server closed the connection"),
        Ok(n) => panic!(
            "{what}: unexpectedly received {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("{what}: {e}"),
    }
    stream.set_read_timeout(Some(WAIT)).unwrap();
}

/// Asserts the server closes `stream` at least `at_least` and well before `below` after
/// `idle_since` (a keep-alive timeout at work, not some later one). Take `idle_since` before
/// sending the last request: the server's idle time starts after its answer, so the bound then
/// holds however late the test's thread runs.
pub fn assert_closed_when_idle(
    stream: &mut TcpStream,
    idle_since: Instant,
    at_least: Duration,
    below: Duration,
) {
    assert!(
        closed_within(stream, below.max(WAIT)),
        "idle connection left open"
    );
    let idle = idle_since.elapsed();
    assert!(
        idle >= at_least && idle < below,
        "closed after {idle:?} idle, expected between {at_least:?} and {below:?}"
    );
}

/// The send and receive queues (`tx_queue`, `rx_queue`: bytes not yet sent, bytes not yet read)
/// of the IPv4 TCP socket at `local` connected to `remote`, from `/proc/net/tcp`. `None` if there
/// is no such socket.
pub fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let parse_addr = |s: &str| -> Option<SocketAddr> {
        let (ip, port) = s.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        Some(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(ip.to_ne_bytes()),
            port,
        )))
    };
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || parse_addr(f[1])? != local || parse_addr(f[2])? != remote {
            return None;
        }
        let (tx, rx) = f[4].split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}
