//! Events: what native threads (HTTP connections, clients, signal handlers, embedders) send into
//! the one Lua thread, and the cloneable [`EventSender`] they send it with.
//!
//! The channel is bounded: a producer that finds it full waits (backpressure); nothing is ever
//! dropped silently. Native events are turned into Lua values only on the Lua thread, when they
//! are delivered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};

use crate::error::RuntimeGone;
use crate::http::client::ClientOutcome;
use crate::http::exchange::ExchangeGuard;
use crate::http::listener::{OwedResponse, ResponseTracker};
use crate::poller::Poller;
use crate::ws::WsEvent;

/// A plain value carried by an event from another thread into Lua.
#[derive(Debug, Clone, PartialEq)]
pub enum EventValue {
    /// `nil`.
    Nil,
    /// A boolean.
    Boolean(bool),
    /// An integer (a Lua number under Lua 5.2).
    Integer(i64),
    /// A float.
    Number(f64),
    /// A string (any bytes).
    String(Vec<u8>),
}

impl From<bool> for EventValue {
    fn from(v: bool) -> Self {
        EventValue::Boolean(v)
    }
}
impl From<i64> for EventValue {
    fn from(v: i64) -> Self {
        EventValue::Integer(v)
    }
}
impl From<f64> for EventValue {
    fn from(v: f64) -> Self {
        EventValue::Number(v)
    }
}
impl From<&str> for EventValue {
    fn from(v: &str) -> Self {
        EventValue::String(v.as_bytes().to_vec())
    }
}
impl From<String> for EventValue {
    fn from(v: String) -> Self {
        EventValue::String(v.into_bytes())
    }
}
impl From<Vec<u8>> for EventValue {
    fn from(v: Vec<u8>) -> Self {
        EventValue::String(v)
    }
}

/// A request read completely off the socket, waiting for the script.
#[derive(Debug)]
pub(crate) struct IncomingRequest {
    /// The event's name, chosen by the API that opened the listener.
    pub event: &'static str,
    /// The listener's port, as the script named it (0 for a UNIX socket).
    pub port: u16,
    /// Which listener the request came through (unique in the process).
    pub listener: u64,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The local address the client connected to.
    pub local: Option<SocketAddr>,
    /// Unique per connection in the process: requests on one keep-alive connection share it.
    pub connection: u64,
    /// Whether the connection is TLS (the request came over HTTPS).
    pub tls: bool,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The whole body, read before the request was handed over; empty when the listener streams
    /// bodies (they are read through the exchange, as the script asks).
    pub body: Vec<u8>,
    /// Answers the client if the request is never handled.
    pub guard: ExchangeGuard,
}

/// The event CraftOS's listeners deliver requests as.
pub(crate) const HTTP_REQUEST: &str = "http_request";

/// The Lua name of [`Event::ConnectionClosed`]: internal to the APIs that ask for it.
pub(crate) const CONNECTION_CLOSED: &str = "ccserve_connection_closed";

/// The Lua name of [`Event::StreamReady`]: internal to the APIs that wait for it.
pub(crate) const STREAM_READY: &str = "ccserve_stream_ready";

/// An event on its way into the Lua thread.
#[derive(Debug)]
pub(crate) enum Event {
    /// An event with plain values (`os.queueEvent` from another thread).
    Custom { name: String, args: Vec<EventValue> },
    /// Ctrl+C, SIGTERM, or an embedder asking the script to stop.
    Terminate,
    /// `http_request`.
    HttpRequest(Box<IncomingRequest>),
    /// `http_success` / `http_failure`.
    HttpClient(Box<ClientOutcome>),
    /// A WebSocket connection event (`websocket_server_*`, `websocket_*`).
    Ws(Box<WsEvent>),
    /// The connection with this id (see [`IncomingRequest::connection`]) has ended.
    ConnectionClosed(u64),
    /// The exchange with this id can go on: its connection took enough of the response to have
    /// room again, a piece of its request body arrived, or the client left.
    StreamReady(u64),
}

impl Event {
    /// The event's name as Lua sees it, known before the event is turned into Lua values.
    pub fn name(&self) -> &str {
        match self {
            Event::Custom { name, .. } => name,
            Event::Terminate => "terminate",
            Event::HttpRequest(r) => r.event,
            Event::HttpClient(o) => o.event_name(),
            Event::Ws(ev) => ev.name(),
            Event::StreamReady(_) => STREAM_READY,
            Event::ConnectionClosed(_) => CONNECTION_CLOSED,
        }
    }
}

/// How a sender wakes the Lua thread when it sleeps waiting for events.
///
/// The Lua thread takes events with `try_recv` only, and when there are none it parks itself
/// (see `Scheduler::wait_event`) instead of blocking in the channel's `recv`. The channel's
/// blocking receive first spins and calls `sched_yield` several times, which on a lightly loaded
/// server cost about a tenth of the Lua thread's time per request; parking at once does not.
/// The protocol: the Lua thread sets `sleeping`, looks at the channel once more, and parks;
/// a sender sends, then unparks the thread if `sleeping` is set. Either the second look finds
/// the event or the sender sees the flag (both are sequentially consistent), and an unpark that
/// comes before the park makes the park return at once, so no wake-up is lost.
///
/// Where there is a [`Poller`] (Linux), the Lua thread sleeps in it instead of parking, so that
/// it also wakes for parked connections, and ringing writes to the poller's `eventfd` (counted,
/// so a ring before the sleep is not lost either).
#[derive(Debug)]
pub(crate) struct Doorbell {
    /// The Lua thread is parked, or about to park.
    sleeping: AtomicBool,
    /// The thread that parks (the one running the event loop), without a poller.
    thread: Mutex<Option<Thread>>,
    /// What the Lua thread sleeps on, once its event loop has set one up (see
    /// [`Doorbell::start_poller`]).
    poller: OnceLock<Arc<Poller>>,
}

impl Default for Doorbell {
    fn default() -> Self {
        Doorbell {
            sleeping: AtomicBool::new(false),
            thread: Mutex::new(None),
            poller: OnceLock::new(),
        }
    }
}

impl Doorbell {
    /// Wakes the Lua thread if it sleeps.
    pub(crate) fn ring(&self) {
        if self.sleeping.load(Ordering::SeqCst) {
            if let Some(poller) = self.poller.get() {
                poller.ring();
            } else if let Some(thread) = self.lock().as_ref() {
                thread.unpark();
            }
        }
    }

    /// The poller the Lua thread sleeps on, if there is one.
    pub(crate) fn poller(&self) -> Option<&Arc<Poller>> {
        self.poller.get()
    }

    /// Called by the event loop that receives: sets up the poller it will sleep on, where the
    /// system has one, so that connections may park with it. Receivers that are not an event
    /// loop (the engine's own tests) never call it, and nothing parks with them.
    pub(crate) fn start_poller(&self) -> Option<&Arc<Poller>> {
        if self.poller.get().is_none() {
            if let Some(poller) = Poller::new() {
                let _ = self.poller.set(Arc::new(poller));
            }
        }
        self.poller.get()
    }

    /// Called by the Lua thread before its last look at the channel.
    pub(crate) fn going_to_sleep(&self) {
        let me = std::thread::current();
        let mut thread = self.lock();
        if thread.as_ref().is_none_or(|t| t.id() != me.id()) {
            *thread = Some(me);
        }
        drop(thread);
        self.sleeping.store(true, Ordering::SeqCst);
    }

    /// Called by the Lua thread once awake.
    pub(crate) fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Thread>> {
        self.thread.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sends events into a running script from any thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: Sender<Event>,
    /// Work owed to peers (responses, WebSocket writes) that the runtime waits for at exit.
    owed: Arc<ResponseTracker>,
    /// Wakes the Lua thread after a send.
    bell: Arc<Doorbell>,
}

impl EventSender {
    pub(crate) fn new(tx: Sender<Event>, owed: Arc<ResponseTracker>) -> EventSender {
        EventSender {
            tx,
            owed,
            bell: Arc::default(),
        }
    }

    /// The doorbell the receiving side sleeps by.
    pub(crate) fn doorbell(&self) -> Arc<Doorbell> {
        self.bell.clone()
    }

    /// The poller the receiving side sleeps on, for parking connections with it (see
    /// [`crate::poller`]); `None` where the system has none.
    pub(crate) fn poller(&self) -> Option<Arc<Poller>> {
        self.bell.poller().cloned()
    }

    /// Rings the doorbell if the send went through.
    fn rang<E>(&self, sent: Result<(), E>) -> Result<(), E> {
        if sent.is_ok() {
            self.bell.ring();
        }
        sent
    }

    /// Notes work owed to a peer until the returned guard is dropped; the runtime waits for it
    /// (briefly) before exiting.
    pub(crate) fn owe(&self) -> OwedResponse {
        self.owed.owe()
    }

    /// Queues the event `name` with `args`, as `os.queueEvent(name, ...)` would. Blocks while the
    /// queue is full. Fails once the script has ended.
    pub fn queue_event(
        &self,
        name: impl Into<String>,
        args: Vec<EventValue>,
    ) -> Result<(), RuntimeGone> {
        let sent = self.tx.send(Event::Custom {
            name: name.into(),
            args,
        });
        self.rang(sent).map_err(|_| RuntimeGone)
    }

    /// Queues a `terminate` event (what Ctrl+C does).
    pub fn terminate(&self) -> Result<(), RuntimeGone> {
        let sent = self.tx.send(Event::Terminate);
        self.rang(sent).map_err(|_| RuntimeGone)
    }

    /// Sends a native event, waiting for room as long as it takes (backpressure on the sender's
    /// socket). Returns false once the runtime is gone.
    pub(crate) fn send_blocking(&self, ev: Event) -> bool {
        match self.tx.try_send(ev) {
            Ok(()) => {
                self.bell.ring();
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
            Err(TrySendError::Full(ev)) => {
                log::debug!("event queue full; waiting for the script to take events");
                let sent = self.tx.send(ev);
                self.rang(sent).is_ok()
            }
        }
    }

    /// Sends a native event, waiting at most `timeout` for room. Gives the event back if it could
    /// not be sent, so the caller can answer for it.
    pub(crate) fn send_within(&self, ev: Event, timeout: Duration) -> Result<(), Event> {
        let ev = match self.tx.try_send(ev) {
            Ok(()) => {
                self.bell.ring();
                return Ok(());
            }
            Err(TrySendError::Disconnected(ev)) => return Err(ev),
            Err(TrySendError::Full(ev)) => ev,
        };
        log::debug!("event queue full; waiting for the script to take events");
        let sent = self.tx.send_timeout(ev, timeout);
        self.rang(sent).map_err(|e| match e {
            SendTimeoutError::Timeout(ev) | SendTimeoutError::Disconnected(ev) => ev,
        })
    }
}
