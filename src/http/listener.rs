//! `http.addListener`: a bound socket and the thread that accepts on it.
//!
//! Each listener owns one accept thread; each accepted connection gets its own thread
//! ([`connection`](super::connection)), so an idle keep-alive client or a slow upload never
//! delays anyone else. Removing a listener closes the socket at once (the port can be bound again
//! immediately), answers its unanswered requests `500`, closes its idle connections, and waits for
//! its connection threads to end (those still writing a response get a short grace period).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::Socket;

use super::exchange::Exchange;
use crate::config::Config;
use crate::event::EventSender;
use crate::net;
use crate::workers::Workers;

/// Counts work owed to peers (HTTP responses, WebSocket writers still sending), so the runtime
/// can wait for it before exiting. Counting is one atomic operation per response; the lock is
/// only taken to wake the waiter when the count drops to zero.
#[derive(Debug, Default)]
pub struct ResponseTracker {
    count: AtomicUsize,
    /// Threads in [`wait_idle`](Self::wait_idle): only then does the last guard wake anyone
    /// (a notify is a system call, on every request otherwise).
    waiters: AtomicUsize,
    lock: Mutex<()>,
    idle: Condvar,
}

impl ResponseTracker {
    /// Notes one more response owed; the returned guard marks it delivered when dropped.
    pub fn owe(self: &Arc<Self>) -> OwedResponse {
        self.count.fetch_add(1, Ordering::SeqCst);
        OwedResponse(self.clone())
    }

    /// Waits until no response is owed, or `timeout` passes. Returns how many are still owed.
    pub fn wait_idle(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // Announced before the count is read: a guard dropping the count to zero after that read
        // sees the waiter and notifies (under the lock, so not before this thread waits).
        self.waiters.fetch_add(1, Ordering::SeqCst);
        loop {
            let count = self.count.load(Ordering::SeqCst);
            let left = deadline.saturating_duration_since(Instant::now());
            if count == 0 || left.is_zero() {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
                return count;
            }
            // The last guard to drop takes the lock before notifying, so it cannot notify
            // between the check above and this wait.
            guard = self
                .idle
                .wait_timeout(guard, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// A response still owed to a client (see [`ResponseTracker::owe`]).
#[derive(Debug)]
pub struct OwedResponse(Arc<ResponseTracker>);

impl Drop for OwedResponse {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1
            && self.0.waiters.load(Ordering::SeqCst) > 0
        {
            let _guard = self.0.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.0.idle.notify_all();
        }
    }
}

/// How a listener's connections read request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// The whole body (at most [`Config::max_body`]) is read before the request is handed to the
    /// script, and `Expect: 100-continue` is answered at once (CraftOS-PC's API).
    Whole,
    /// The script reads the body piece by piece as it wants (at most
    /// [`Config::max_stream_body`] in all); `Expect: 100-continue` is answered when it first
    /// reads, or when it sends `100` itself.
    Streamed,
}

/// What an API asks of a listener beyond the address: how bodies are read, what its requests are
/// called, and socket options.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// How request bodies are read.
    pub body_mode: BodyMode,
    /// The name of the event each request arrives as (the API that opened the listener picks
    /// it, and turns the event into its own Lua values).
    pub event: &'static str,
    /// `SO_REUSEPORT`: share the port with other sockets that set it too.
    pub reuse_port: bool,
    /// For an IPv6 address: accept IPv6 only (`Some(true)`), or IPv4 too (`Some(false)`).
    /// `None`: IPv4 too when the address is `::`, the system's default otherwise.
    pub v6_only: Option<bool>,
    /// Send [`Event::ConnectionClosed`](crate::event::Event) when a connection ends (an API that
    /// keeps per-connection objects needs to know when to let them go).
    pub report_closed: bool,
    /// Serve HTTPS with this certificate: each connection's TLS handshake runs on a thread of
    /// its own, then the connection is served as any other (`src/tls.rs`).
    pub tls: Option<crate::tls::TlsListen>,
}

impl ListenerOptions {
    /// Whole bodies, requests named `event`, default socket options.
    pub fn whole(event: &'static str) -> ListenerOptions {
        ListenerOptions {
            body_mode: BodyMode::Whole,
            event,
            reuse_port: false,
            v6_only: None,
            report_closed: false,
            tls: None,
        }
    }
}

/// State shared by a listener's accept thread and its connection threads.
#[derive(Debug)]
pub struct ListenerShared {
    /// The bound port (reported in `http_request`); 0 for a UNIX socket.
    pub port: u16,
    /// Unique in the process: which listener a request came through.
    pub id: u64,
    /// Limits and timeouts.
    pub config: Arc<Config>,
    /// Where requests go.
    pub events: EventSender,
    /// How bodies are read and what requests are called.
    pub options: ListenerOptions,
    /// Set when the listener is removed.
    pub stopped: Arc<AtomicBool>,
    /// The threads serving open connections.
    pub connections: Arc<Workers>,
    /// Responses owed, for a clean exit.
    pub tracker: Arc<ResponseTracker>,
    pending: Mutex<HashMap<u64, Arc<Exchange>>>,
    next_id: AtomicU64,
}

impl ListenerShared {
    /// Remembers an exchange waiting for the script, so removal can answer it. Fails once the
    /// listener is stopped (checked under the same lock `stop` takes after setting the flag, so
    /// every exchange is either seen by `stop` or refused here).
    pub fn register(&self, exchange: Arc<Exchange>) -> Option<u64> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if self.stopped.load(Ordering::SeqCst) {
            return None;
        }
        pending.insert(id, exchange);
        Some(id)
    }

    /// Forgets an exchange once its response is taken.
    pub fn unregister(&self, id: u64) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

/// How long a removed listener's connections may take to finish sending a response.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// A running HTTP listener. Dropping it stops it.
#[derive(Debug)]
pub struct Listener {
    shared: Arc<ListenerShared>,
    socket: Socket,
    /// The bound address; `0.0.0.0:0` for a UNIX socket.
    local_addr: SocketAddr,
    /// The path of a UNIX socket.
    path: Option<std::path::PathBuf>,
    thread: Option<JoinHandle<()>>,
}

/// A new listener's state shared with its threads.
fn new_shared(
    port: u16,
    options: ListenerOptions,
    config: Arc<Config>,
    events: EventSender,
    tracker: Arc<ResponseTracker>,
) -> Arc<ListenerShared> {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    Arc::new(ListenerShared {
        port,
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        config,
        events,
        options,
        stopped: Arc::new(AtomicBool::new(false)),
        connections: Arc::new(Workers::default()),
        tracker,
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
    })
}

/// Serves an accepted connection: on a thread of its own, after the TLS handshake on a TLS
/// listener (`crate::tls`).
fn serve_accepted(stream: std::net::TcpStream, shared: &Arc<ListenerShared>) {
    let shared = shared.clone();
    match shared.options.tls.clone() {
        Some(tls) => {
            let config = shared.config.clone();
            crate::tls::spawn_accept(stream, tls, &config, move |socket| {
                super::connection::serve_here(socket, shared)
            })
        }
        None => super::connection::spawn(stream, shared),
    }
}

impl Listener {
    /// Binds `addr` and starts accepting. Port 0 binds a free port; [`port`](Self::port) tells
    /// which, and the request events report it.
    pub fn start(
        addr: SocketAddr,
        options: ListenerOptions,
        config: Arc<Config>,
        events: EventSender,
        tracker: Arc<ResponseTracker>,
    ) -> io::Result<Listener> {
        let (socket, listener, local_addr) = net::bind(addr, options.reuse_port, options.v6_only)?;
        let shared = new_shared(local_addr.port(), options, config, events, tracker);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ccserve-listen-{}", local_addr.port()))
            .stack_size(shared.config.thread_stack_size)
            .spawn(move || {
                let what = format!("port {}", thread_shared.port);
                net::accept_loop(listener, &thread_shared.stopped, &what, |stream| {
                    serve_accepted(stream, &thread_shared)
                })
            })?;
        let scheme = if shared.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        log::info!("listening on {scheme}://{local_addr}");
        Ok(Listener {
            shared,
            socket,
            local_addr,
            path: None,
            thread: Some(thread),
        })
    }

    /// Binds a UNIX domain socket at `path` (see [`net::bind_unix`] for `unlink` and `mode`)
    /// and starts accepting. Its requests report port 0.
    #[cfg(unix)]
    pub fn start_unix(
        path: &std::path::Path,
        unlink: bool,
        mode: Option<u32>,
        options: ListenerOptions,
        config: Arc<Config>,
        events: EventSender,
        tracker: Arc<ResponseTracker>,
    ) -> io::Result<Listener> {
        let (socket, listener) = net::bind_unix(path, unlink, mode)?;
        let shared = new_shared(0, options, config, events, tracker);
        let thread_shared = shared.clone();
        let what = format!("unix:{}", path.display());
        let thread = std::thread::Builder::new()
            .name("ccserve-listen-unix".into())
            .stack_size(shared.config.thread_stack_size)
            .spawn(move || {
                net::accept_unix_loop(listener, &thread_shared.stopped, &what, |stream| {
                    serve_accepted(stream, &thread_shared)
                })
            })?;
        log::info!("listening on unix:{}", path.display());
        Ok(Listener {
            shared,
            socket,
            local_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            path: Some(path.to_path_buf()),
            thread: Some(thread),
        })
    }

    /// Unique in the process; the requests it accepts carry it.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, frees the port, answers the requests still waiting for the script, and
    /// waits for the connection threads to end: idle ones end at once, one still sending a
    /// response has [`STOP_GRACE`] to finish it before its socket is shut down.
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.stopped.store(true, Ordering::SeqCst);
        match &self.path {
            #[cfg(unix)]
            Some(path) => net::wake_unix_accept(&self.socket, path),
            _ => net::wake_accept(&self.socket, self.local_addr),
        }
        if thread.join().is_err() {
            log::error!("accept thread of port {} panicked", self.shared.port);
        }
        let pending: Vec<Arc<Exchange>> = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for exchange in pending {
            exchange.abandon(500);
        }
        let left = self.shared.connections.stop_all(STOP_GRACE);
        if left > 0 {
            log::warn!(
                "port {}: {left} connection threads did not end in time; they end on their own",
                self.local_addr.port()
            );
        }
        log::info!("stopped listening on port {}", self.local_addr.port());
    }
}

/// Removes the listener on `port` from `listeners` (an API's table of its listeners, by port)
/// and stops it, outside the borrow: stopping waits for its connection threads.
pub fn remove_listener<K: std::hash::Hash + Eq>(
    listeners: &std::cell::RefCell<HashMap<K, Listener>>,
    port: K,
) {
    let removed = listeners.borrow_mut().remove(&port);
    if let Some(mut listener) = removed {
        listener.stop();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}
