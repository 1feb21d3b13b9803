//! WebSocket servers and clients over blocking `tungstenite`.
//!
//! [`server`] accepts connections (one accept thread per server); [`client`] opens them; each
//! connection then runs as a reader and a writer thread ([`connection`]). Everything the network
//! says reaches the Lua thread as a [`WsEvent`]; the API layer names it after the API generation
//! that opened the connection.

pub mod client;
pub mod connection;
pub mod frame;
pub mod handshake;
pub mod server;

use std::sync::atomic::{AtomicU64, Ordering};

use connection::Link;

/// Which API opened a connection; decides the events' names and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsOrigin {
    /// `http.websocketServer(port)`: `websocket_server_*` events keyed by client ID.
    Server {
        /// The bound port.
        port: u16,
    },
    /// `http.websocket(port)`, the older server API (seed 000): `websocket_*` events carrying the
    /// port first and the client ID last, and `websocket_server_closed(port)` when the server
    /// stops after its last client left.
    LegacyServer {
        /// The bound port.
        port: u16,
    },
    /// A connection an HTTP exchange handed over after its `101` (lua-http's
    /// `http.websocket.new_from_stream`): internal `ccserve_websocket` events keyed by the
    /// exchange's id, which the API's Lua half routes to the waiting coroutine.
    Stream {
        /// The exchange's id.
        id: u64,
    },
    /// `http.websocket(url)`: `websocket_*` events keyed by URL.
    Client {
        /// The URL as the script gave it.
        url: String,
    },
}

/// The event name of every [`WsOrigin::Stream`] connection event.
pub const STREAM_WEBSOCKET: &str = "ccserve_websocket";

/// What happened on a connection.
#[derive(Debug)]
pub enum WsEventKind {
    /// The handshake completed; the script gets a handle around the link.
    Connected(Link),
    /// A whole message (fragments are reassembled by tungstenite).
    Message(Vec<u8>, bool),
    /// The connection ended, with the peer's close reason and code if it sent any.
    Closed {
        /// Close reason.
        reason: Option<String>,
        /// Close code.
        code: Option<u16>,
    },
    /// A client connection could not be opened.
    Failed(String),
    /// An older-API server stopped listening because its last client left.
    ServerClosed,
}

/// An event from a WebSocket connection.
#[derive(Debug)]
pub struct WsEvent {
    /// Which API the connection belongs to.
    pub origin: WsOrigin,
    /// The connection's id (the client ID scripts compare).
    pub id: u64,
    /// What happened.
    pub kind: WsEventKind,
}

impl WsEvent {
    /// The Lua event name.
    pub fn name(&self) -> &'static str {
        match (&self.origin, &self.kind) {
            (WsOrigin::Stream { .. }, _) => STREAM_WEBSOCKET,
            (WsOrigin::Server { .. }, WsEventKind::Connected(_)) => "websocket_server_connect",
            (WsOrigin::Server { .. }, WsEventKind::Message(..)) => "websocket_server_message",
            (WsOrigin::Server { .. }, _) => "websocket_server_closed",
            (WsOrigin::LegacyServer { .. }, WsEventKind::Connected(_)) => "websocket_success",
            (WsOrigin::LegacyServer { .. }, WsEventKind::Message(..)) => "websocket_message",
            (WsOrigin::LegacyServer { .. }, WsEventKind::ServerClosed) => "websocket_server_closed",
            (WsOrigin::LegacyServer { .. }, _) => "websocket_closed",
            (WsOrigin::Client { .. }, WsEventKind::Connected(_)) => "websocket_success",
            (WsOrigin::Client { .. }, WsEventKind::Message(..)) => "websocket_message",
            (WsOrigin::Client { .. }, WsEventKind::Closed { .. }) => "websocket_closed",
            (WsOrigin::Client { .. }, _) => "websocket_failure",
        }
    }
}

/// A fresh connection id; never reused within the process, never 0.
pub fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
