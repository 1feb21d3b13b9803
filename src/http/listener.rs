//! `http.addListener`: a bound socket and the thread that accepts on it.
//!
//! Each listener owns one accept thread; each accepted connection gets its own thread
//! ([`connection`](super::connection)), so an idle keep-alive client or a slow upload never
//! delays anyone else. Removing a listener closes the socket at once (the port can be bound again
//! immediately), answers its unanswered requests `500`, and lets its open connections answer any
//! further request with `503` and close.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::exchange::Exchange;
use crate::config::Config;
use crate::event::EventSender;

/// Counts responses that are owed to clients, so the runtime can wait for them before exiting.
#[derive(Debug, Default)]
pub struct ResponseTracker {
    count: Mutex<usize>,
    idle: Condvar,
}

impl ResponseTracker {
    /// Notes one more response owed; the returned guard marks it delivered when dropped.
    pub fn owe(self: &Arc<Self>) -> OwedResponse {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        OwedResponse(self.clone())
    }

    /// Waits until no response is owed, or `timeout` passes. Returns how many are still owed.
    pub fn wait_idle(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *count > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            count = self
                .idle
                .wait_timeout(count, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        *count
    }
}

/// A response still owed to a client (see [`ResponseTracker::owe`]).
#[derive(Debug)]
pub struct OwedResponse(Arc<ResponseTracker>);

impl Drop for OwedResponse {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(|p| p.into_inner());
        *count -= 1;
        if *count == 0 {
            self.0.idle.notify_all();
        }
    }
}

/// State shared by a listener's accept thread and its connection threads.
#[derive(Debug)]
pub struct ListenerShared {
    /// The bound port (reported in `http_request`).
    pub port: u16,
    /// Limits and timeouts.
    pub config: Arc<Config>,
    /// Where requests go.
    pub events: EventSender,
    /// Set when the listener is removed.
    pub stopped: AtomicBool,
    /// Open connections.
    pub connections: AtomicUsize,
    /// Responses owed, for a clean exit.
    pub tracker: Arc<ResponseTracker>,
    pending: Mutex<HashMap<u64, Arc<Exchange>>>,
    next_id: AtomicU64,
}

impl ListenerShared {
    /// Remembers an exchange waiting for the script, so removal can answer it.
    pub fn register(&self, exchange: Arc<Exchange>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, exchange);
        id
    }

    /// Forgets an exchange once its response is taken.
    pub fn unregister(&self, id: u64) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

/// A running HTTP listener. Dropping it stops it.
#[derive(Debug)]
pub struct Listener {
    shared: Arc<ListenerShared>,
    socket: Socket,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Binds `config.bind:port` and starts accepting. Port 0 binds a free port; [`port`]
    /// (Self::port) tells which, and `http_request` events report it.
    pub fn start(
        port: u16,
        config: Arc<Config>,
        events: EventSender,
        tracker: Arc<ResponseTracker>,
    ) -> io::Result<Listener> {
        let addr = SocketAddr::new(config.bind, port);
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        // SO_REUSEADDR lets a port be bound again while old connections sit in TIME_WAIT; unlike
        // CraftOS-PC we never set SO_REUSEPORT, so a port held by anyone else is refused.
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() && addr.ip().is_unspecified() {
            socket.set_only_v6(false)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let local_addr = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("listener has no IP address"))?;
        let listener: TcpListener = socket.try_clone()?.into();
        let shared = Arc::new(ListenerShared {
            port: local_addr.port(),
            config,
            events,
            stopped: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            tracker,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ccserve-listen-{}", local_addr.port()))
            .stack_size(shared.config.thread_stack_size)
            .spawn(move || accept_loop(listener, thread_shared))?;
        log::info!("listening on http://{local_addr}");
        Ok(Listener {
            shared,
            socket,
            local_addr,
            thread: Some(thread),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Stops accepting, frees the port and answers the requests still waiting for the script.
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.stopped.store(true, Ordering::SeqCst);
        wake_accept(&self.socket, self.local_addr);
        if thread.join().is_err() {
            log::error!("accept thread of port {} panicked", self.local_addr.port());
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
        log::info!("stopped listening on port {}", self.local_addr.port());
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes a thread blocked in `accept` on this socket return.
fn wake_accept(socket: &Socket, addr: SocketAddr) {
    // On Linux, shutting down a listening socket makes a blocked accept() fail at once.
    if socket.shutdown(std::net::Shutdown::Both).is_ok() && cfg!(target_os = "linux") {
        return;
    }
    // Elsewhere, connect to ourselves so accept() returns and the thread sees the stop flag.
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let _ = std::net::TcpStream::connect_timeout(
        &SocketAddr::new(ip, addr.port()),
        Duration::from_secs(1),
    );
}

fn accept_loop(listener: TcpListener, shared: Arc<ListenerShared>) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                if shared.stopped.load(Ordering::SeqCst) {
                    break;
                }
                log::debug!("connection from {peer} on port {}", shared.port);
                super::connection::spawn(stream, shared.clone());
            }
            Err(e) => {
                if shared.stopped.load(Ordering::SeqCst) {
                    break;
                }
                // Never let one failed accept end the listener (tiny_http's H6): EMFILE and
                // friends clear up when other connections close. Back off briefly so a persistent
                // error does not spin.
                log::warn!("accept on port {} failed: {e}", shared.port);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
