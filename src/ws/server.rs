//! `http.websocketServer`: a bound socket, its accept thread, and one reader/writer thread pair
//! per client ([`connection`](super::connection)).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::Socket;
use tungstenite::protocol::Role;

use super::connection::{self, Control, Limits, Out, Outbox};
use super::{next_id, WsEvent, WsEventKind, WsOrigin};
use crate::config::Config;
use crate::event::{Event, EventSender};
use crate::http::exchange::Upgraded;
use crate::http::head::{read_head, HeadError, HeadLimits};
use crate::http::input::Input;
use crate::http::response::{write_response, WireOptions};
use crate::net;
use crate::workers::Workers;

/// Time a client of a closing server has to answer the Close frame before its socket is shut down.
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Time a client has to complete its opening handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the accept thread and the client threads.
struct Shared {
    port: u16,
    /// Started by the older API: old-style events, and it stops when its last client leaves.
    legacy: bool,
    /// A handle on the listening socket, to stop accepting from a client thread.
    socket: Socket,
    local_addr: SocketAddr,
    config: Arc<Config>,
    events: EventSender,
    stopped: AtomicBool,
    clients: Mutex<HashMap<u64, Weak<Control>>>,
    /// The client threads (each reader joins its writer before it ends).
    threads: Arc<Workers>,
}

impl Shared {
    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Weak<Control>>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running WebSocket server. Dropping it stops it.
pub struct WsServer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl WsServer {
    /// Binds `config.bind:port` (0: a free port) and starts accepting clients. A `legacy`
    /// server (the older `http.websocket(port)` API) sends old-style events and stops by itself
    /// once its last client has left.
    pub fn start(
        port: u16,
        legacy: bool,
        tls: Option<crate::tls::TlsListen>,
        config: Arc<Config>,
        events: EventSender,
    ) -> io::Result<WsServer> {
        let (socket, listener, local_addr) =
            net::bind(SocketAddr::new(config.bind, port), false, None)?;
        let shared = Arc::new(Shared {
            port: local_addr.port(),
            legacy,
            socket,
            local_addr,
            config,
            events,
            stopped: AtomicBool::new(false),
            clients: Mutex::new(HashMap::new()),
            threads: Arc::new(Workers::default()),
        });
        let thread_shared = shared.clone();
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        let thread = std::thread::Builder::new()
            .name(format!("ccserve-ws-{}", local_addr.port()))
            .stack_size(shared.config.thread_stack_size)
            .spawn(move || {
                let what = format!("websocket port {}", thread_shared.port);
                net::accept_loop(listener, &thread_shared.stopped, &what, |stream| {
                    let shared = thread_shared.clone();
                    match &tls {
                        Some(tls) => {
                            let config = shared.config.clone();
                            crate::tls::spawn_accept(stream, tls.clone(), &config, move |socket| {
                                let (stack, timeout) =
                                    (shared.config.thread_stack_size, shared.config.write_timeout);
                                match Arc::new(socket).into_stream(stack, timeout) {
                                    Ok(stream) => spawn_client(stream, shared),
                                    Err(e) => log::warn!("cannot serve a wss client: {e}"),
                                }
                            })
                        }
                        None => spawn_client(Arc::new(stream), shared),
                    }
                })
            })?;
        log::info!("websocket server listening on {scheme}://{local_addr}");
        Ok(WsServer {
            shared,
            thread: Some(thread),
        })
    }

    /// Whether the server has stopped accepting (an older-API server whose clients all left).
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// Stops accepting, frees the port, closes every connected client (1001), and waits for the
    /// client threads to end: a client has [`CLOSE_WAIT`] to answer the Close frame, then its
    /// socket is shut down.
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.stopped.store(true, Ordering::SeqCst);
        net::wake_accept(&self.shared.socket, self.shared.local_addr);
        if thread.join().is_err() {
            log::error!("websocket accept thread of port {} panicked", self.port());
        }
        let clients: Vec<Arc<Control>> = self
            .shared
            .clients()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for client in clients {
            client.close(1001, "Server closed");
        }
        let threads = &self.shared.threads;
        if threads.wait_ended(CLOSE_WAIT) > 0 {
            let left = threads.stop_all(Duration::ZERO);
            if left > 0 {
                log::warn!(
                    "websocket port {}: {left} client threads did not end in time",
                    self.port()
                );
            }
        }
        log::info!("websocket server on port {} closed", self.port());
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_client(stream: Arc<TcpStream>, shared: Arc<Shared>) {
    // The client limit is enforced after the handshake (with close code 1013), not here.
    let Some(worker) = shared.threads.enroll(stream.clone(), usize::MAX) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("ccserve-ws-read".into())
        .stack_size(shared.config.thread_stack_size)
        .spawn(move || {
            let _worker = worker;
            serve_client(&stream, &shared);
        });
    if let Err(e) = spawned {
        log::warn!("cannot start a websocket client thread: {e}");
    }
}

fn serve_client(stream: &Arc<TcpStream>, shared: &Shared) {
    let config = &shared.config;
    let limits = Limits::of(config);
    crate::sched::batch_thread(limits.batch_threads);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(config.write_timeout));
    let id = next_id();
    let pending =
        match connection::start_writer(stream, id, Role::Server, limits, shared.events.owe()) {
            Ok(p) => p,
            Err(e) => {
                log::warn!("cannot start a websocket writer thread: {e}");
                return;
            }
        };
    // The opening handshake is ours (our request-head parser, limits and deadline), so bytes the
    // client sends right behind its upgrade request are kept and handed to tungstenite, and the
    // 101 response goes out through the writer thread like every later frame.
    let Some(leftover) = handshake(stream, &pending.out, config) else {
        pending.finish();
        return;
    };
    let origin = if shared.legacy {
        WsOrigin::LegacyServer { port: shared.port }
    } else {
        WsOrigin::Server { port: shared.port }
    };
    // Admit the client under the lock `stop` takes after setting its flag, so a client is either
    // closed by `stop` or refused here.
    let admit = |control: &Arc<Control>| {
        let mut clients = shared.clients();
        let refusal = if shared.stopped.load(Ordering::SeqCst) {
            Some((1001, "Server closed"))
        } else if clients.len() >= config.ws_max_clients {
            Some((1013, "Too many clients"))
        } else {
            clients.insert(id, Arc::downgrade(control));
            None
        };
        if let Some((_, reason)) = refusal {
            log::warn!(
                "websocket port {}: refusing a client ({reason})",
                shared.port
            );
        }
        refusal
    };
    connection::run_server_side(stream, pending, leftover, &origin, &shared.events, admit);
    let left = {
        let mut clients = shared.clients();
        clients.remove(&id);
        clients.len()
    };
    // The older API's server stops listening once all its connections are closed.
    if shared.legacy && left == 0 && !shared.stopped.swap(true, Ordering::SeqCst) {
        net::wake_accept(&shared.socket, shared.local_addr);
        log::info!(
            "websocket port {}: last client left, server stopped",
            shared.port
        );
        shared.events.send_blocking(Event::Ws(Box::new(WsEvent {
            origin,
            id: 0,
            kind: WsEventKind::ServerClosed,
        })));
    }
}

/// Serves a WebSocket connection that an HTTP exchange handed over after its `101` response
/// (written by the exchange, so the handshake is done): starts its writer, announces it to the
/// script as `origin`, and reads on the calling thread until the connection ends.
pub fn serve_upgraded(upgraded: Upgraded, origin: WsOrigin, events: &EventSender, limits: Limits) {
    // A TLS connection goes on through pump threads (`crate::tls::pumped`).
    let stream = match upgraded
        .stream
        .into_stream(limits.stack_size, limits.write_timeout)
    {
        Ok(stream) => stream,
        Err(e) => {
            log::warn!("cannot hand a connection to the websocket engine: {e}");
            return;
        }
    };
    let pending =
        match connection::start_writer(&stream, next_id(), Role::Server, limits, events.owe()) {
            Ok(p) => p,
            Err(e) => {
                log::warn!("cannot start a websocket writer thread: {e}");
                return;
            }
        };
    connection::run_server_side(&stream, pending, upgraded.leftover, &origin, events, |_| {
        None
    });
}

/// Reads and answers the opening handshake. Returns the bytes received after the request, or
/// `None` if the request was not a valid upgrade (it has been answered with an error status).
fn handshake(stream: &Arc<TcpStream>, out: &Outbox, config: &Config) -> Option<Vec<u8>> {
    let mut input = Input::shared(Arc::new(crate::socket::Socket::shared(stream.clone())));
    let limits = HeadLimits {
        max_request_line: config.max_request_line,
        max_header_bytes: config.max_header_bytes,
        max_headers: config.max_headers,
        header_timeout: HANDSHAKE_TIMEOUT,
    };
    let reject = |status: u16| {
        let mut response = crate::http::response::Response::plain(status);
        if status == 426 {
            response
                .headers
                .push(("Upgrade".into(), b"websocket".to_vec()));
        }
        let mut bytes = Vec::new();
        let opts = WireOptions {
            minor_version: 1,
            head_only: false,
            keep_alive: false,
        };
        if write_response(&mut bytes, &response, opts).is_ok() {
            let _ = out.send(Out::Raw(bytes));
        }
        None
    };
    let head = match read_head(&mut input, &limits, Instant::now() + HANDSHAKE_TIMEOUT) {
        Ok(head) => head,
        Err(HeadError::Reject(status)) => return reject(status),
        Err(_) => return None,
    };
    if !head.has_token("upgrade", "websocket") || !head.has_token("connection", "upgrade") {
        // A browser or curl asking for a page on a WebSocket port: say so instead of hanging.
        return reject(426);
    }
    let key = head
        .header("sec-websocket-key")
        .map(|k| k.trim_ascii().to_vec());
    let version_ok = head.header("sec-websocket-version").map(|v| v.trim_ascii()) == Some(b"13");
    let (Some(key), true, true) = (
        key,
        version_ok,
        head.method == "GET" && head.minor_version == 1,
    ) else {
        return reject(400);
    };
    let accept = crate::ws::handshake::accept_key(&key);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    out.send(Out::Raw(response.into_bytes())).ok()?;
    Some(input.buffered().to_vec())
}
