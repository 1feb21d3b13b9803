//! A server process of the benches that is not ccserve (real lua-http under `lua5.2`, Lune,
//! nginx), shared by `benches/luahttp.rs` and `benches/peers.rs`: started with its output going
//! to a log file, ready once its 127.0.0.1 port accepts connections (a bounded poll), and stopped
//! with all its descendants, then reaped, when dropped: on every exit path, panics included.
//! Also [`probe_luahttp`]: whether `lua5.2` can load real lua-http.

use super::{local, process_tree, WAIT};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a dropped server gets to end on SIGTERM (nginx's master stops its workers) before
/// it and its descendants get SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A running server process (and whatever processes it started).
pub struct PeerProcess {
    child: Child,
    pub port: u16,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// How it was started, for messages (`lua5.2 examples/luahttp_hello.lua`).
    what: String,
}

impl PeerProcess {
    /// Spawns `command` (stdin from /dev/null, stdout and stderr to `log`, truncated) and polls
    /// until 127.0.0.1:`port` accepts a connection. `Err` (with the last line of the log) if it
    /// cannot be spawned, exits first, or [`WAIT`] passes (then it is stopped). The process gets
    /// SIGKILL if the thread that started it ends first (`PR_SET_PDEATHSIG`), so start it from
    /// the thread that drops it (the bench's main thread).
    pub fn start(
        mut command: Command,
        port: u16,
        log: PathBuf,
        what: &str,
    ) -> Result<PeerProcess, String> {
        let out = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: the closure only calls prctl, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start `{what}`: {e}"))?;
        let mut server = PeerProcess {
            child,
            port,
            log,
            what: what.to_string(),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(why) = server.exited() {
                return Err(why);
            }
            if TcpStream::connect_timeout(&local(port), Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "`{what}` did not accept connections on port {port} within {WAIT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process id of the server (nginx: its master).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(why)` if the process has exited, with the last line of its log.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        let log = self.log_text();
        let last = log.lines().last().unwrap_or("no output").trim().to_string();
        Some(format!("`{}` exited ({status}): {last}", self.what))
    }

    /// What the process has written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let pid = self.child.id();
        if let Ok(None) = self.child.try_wait() {
            let tree = process_tree(pid);
            // SAFETY: plain kill(2) on our own child, which is not reaped yet (so the pid is
            // still ours).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + TERM_GRACE;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            // Whatever is left of it (the root if SIGTERM did not end it, descendants it did not
            // stop; they were its own, listed while it ran).
            for &n in tree.iter().skip(1) {
                if std::path::Path::new(&format!("/proc/{n}")).exists() {
                    // SAFETY: kill(2); `n` was a descendant of our child a moment ago.
                    unsafe { libc::kill(n as libc::pid_t, libc::SIGKILL) };
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The interpreter real lua-http runs under (Debian's `lua-http` ships modules for 5.1 to 5.3).
pub const LUA: &str = "lua5.2";

/// Checks that `lua5.2` can load lua-http; returns its description (`lua-http 0.4, cqueues
/// 20161215, Lua 5.2`) or why not.
pub fn probe_luahttp() -> Result<String, String> {
    let output = Command::new(LUA)
        .arg("-e")
        .arg(
            r#"require "http.server"; require "http.websocket"; local v = require "http.version";
               io.write(v.name, " ", v.version, ", cqueues ", require "cqueues".VERSION, ", ", _VERSION)"#,
        )
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{LUA}`: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "`{LUA}` cannot load lua-http: {}",
            stderr.lines().next().unwrap_or("no message").trim()
        ))
    }
}
