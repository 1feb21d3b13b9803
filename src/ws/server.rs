//! `http.websocketServer`: a bound socket, its accept thread, and one reader/writer thread pair
//! per client ([`connection`](super::connection)).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::Socket;
use tungstenite::protocol::Role;

use super::connection::{self, Control, Duplex, Limits, Link, Out};
use super::{next_id, WsEvent, WsEventKind, WsOrigin};
use crate::config::Config;
use crate::event::{Event, EventSender};
use crate::net;

/// Time a client has to complete its opening handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the accept thread and the client threads.
struct Shared {
    port: u16,
    config: Arc<Config>,
    events: EventSender,
    stopped: AtomicBool,
    clients: Mutex<HashMap<u64, Weak<Control>>>,
}

impl Shared {
    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Weak<Control>>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running WebSocket server. Dropping it stops it.
pub struct WsServer {
    shared: Arc<Shared>,
    socket: Socket,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl WsServer {
    /// Binds `config.bind:port` (0: a free port) and starts accepting clients.
    pub fn start(port: u16, config: Arc<Config>, events: EventSender) -> io::Result<WsServer> {
        let (socket, listener, local_addr) = net::bind(SocketAddr::new(config.bind, port))?;
        let shared = Arc::new(Shared {
            port: local_addr.port(),
            config,
            events,
            stopped: AtomicBool::new(false),
            clients: Mutex::new(HashMap::new()),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ccserve-ws-{}", local_addr.port()))
            .stack_size(shared.config.thread_stack_size)
            .spawn(move || {
                let what = format!("websocket port {}", thread_shared.port);
                net::accept_loop(listener, &thread_shared.stopped, &what, |stream| {
                    spawn_client(stream, thread_shared.clone())
                })
            })?;
        log::info!("websocket server listening on ws://{local_addr}");
        Ok(WsServer {
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

    /// Stops accepting, frees the port, and closes every connected client (1001).
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.stopped.store(true, Ordering::SeqCst);
        net::wake_accept(&self.socket, self.local_addr);
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
        log::info!("websocket server on port {} closed", self.port());
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_client(stream: TcpStream, shared: Arc<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("ccserve-ws-read".into())
        .stack_size(shared.config.thread_stack_size)
        .spawn(move || serve_client(stream, &shared));
    if let Err(e) = spawned {
        log::warn!("cannot start a websocket client thread: {e}");
    }
}

fn serve_client(stream: TcpStream, shared: &Shared) {
    let config = &shared.config;
    let limits = Limits {
        max_message: config.ws_max_message,
        send_queue: config.ws_send_queue,
        stack_size: config.thread_stack_size,
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(config.write_timeout));
    let id = next_id();
    let pending = match connection::start_writer(&stream, id, Role::Server, limits) {
        Ok(p) => p,
        Err(e) => {
            log::warn!("cannot start a websocket writer thread: {e}");
            return;
        }
    };
    let Ok(read_half) = stream.try_clone() else {
        pending.abandon();
        return;
    };
    let _ = read_half.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let duplex = Duplex::new(read_half, pending.out.clone());
    // The handshake runs on the reader's own stream type, so bytes the client sends right behind
    // its upgrade request stay buffered in the WebSocket (not lost), and the 101 response goes
    // out through the writer thread like every later frame.
    let ws = match tungstenite::accept_with_config(duplex, Some(connection::ws_config(&limits))) {
        Ok(ws) => ws,
        Err(e) => {
            log::debug!("websocket port {}: handshake failed: {e}", shared.port);
            // Not a WebSocket request (a browser or curl on this port): say so instead of hanging.
            let _ = pending.out.try_send(Out::Raw(
                b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec(),
            ));
            let _ = pending.out.try_send(Out::Stop);
            return;
        }
    };
    let _ = stream.set_read_timeout(None);
    let Ok(control) = pending.control() else {
        pending.abandon();
        return;
    };
    if shared.clients().len() >= config.ws_max_clients {
        log::warn!(
            "websocket port {}: {} clients, refusing one",
            shared.port,
            config.ws_max_clients
        );
        // The writer sends the Close frame and drops the socket after its grace period.
        control.close(1013, "Too many clients");
        return;
    }
    {
        shared.clients().insert(id, Arc::downgrade(&control));
        let origin = WsOrigin::Server { port: shared.port };
        let connected = Event::Ws(Box::new(WsEvent {
            origin: origin.clone(),
            id,
            kind: WsEventKind::Connected(Link(control.clone())),
        }));
        if shared.events.send_blocking(connected) {
            connection::read_loop(ws, &pending, &origin, &shared.events);
        } else {
            control.abort();
        }
        shared.clients().remove(&id);
    }
}
