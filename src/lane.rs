//! A connection parked with the Lua thread while it waits for its client, so that the client's
//! next small request or WebSocket message wakes no other thread (see [`crate::poller`] for why).
//!
//! When its thread would block reading (an idle keep-alive HTTP connection between requests, or a
//! WebSocket reader between messages) with nothing buffered, the thread [`park`](Lane::park)s:
//! its socket joins the Lua thread's epoll set and the thread sleeps on its waker, watching the
//! socket only for the client hanging up. Who owns the socket is one of three states, changed
//! under the lane's lock:
//!
//! - **Parked**: nobody reads. The Lua thread takes it when the socket turns readable; the
//!   connection's thread takes it back when the keep-alive time runs out or the client hangs up.
//! - **Lua**: the Lua thread read what came. HTTP: a small, complete request without a body
//!   ([`crate::http::connection::open_fast`]) becomes an event at once, its exchange *in
//!   flight*; once the script has handled it ([`Parked::settle`]) and the response went out whole
//!   with one direct write, the lane is parked again. WebSocket: one whole, small data frame
//!   ([`crate::ws::frame::single_message`]) becomes a message event and the lane is parked again
//!   at once. Anything else is handed back.
//! - **Conn**: the connection's thread reads as it always does, starting with the bytes the Lua
//!   thread read ("read ahead") or, for HTTP, the exchange in flight, which it claims when poked
//!   (the response needs it: a remainder, streaming, a body read, an abandoned response) or when
//!   the response timeout passes (so a busy script cannot keep a request from its timeout).
//!
//! The epoll registration is edge-triggered, so that parking again after a request the Lua
//! thread answered costs no system call: the Lua thread read the socket dry (a request it keeps
//! is all there was), so the next bytes to arrive make a new edge. Bytes that arrive while the
//! Lua thread has the socket are reported then; it notes them (`missed`) and re-arms when it parks
//! the lane, which reports bytes already there. The connection's thread, when it takes the socket,
//! disarms it, so that bytes it reads itself do not wake the Lua thread; it arms it again when it
//! parks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::event::{Event, EventSender};
use crate::http::connection::{open_fast, Opened, Peers};
use crate::http::direct::Waker;
use crate::http::listener::ListenerShared;
use crate::poller::{Parked, Poller};
use crate::socket::{Received, Socket};
use crate::ws::{WsEvent, WsEventKind, WsOrigin};

/// Most bytes the Lua thread reads at once: a longer request head or message goes to the
/// connection's thread.
const FAST_READ: usize = 4096;

/// The longest single wait of a parked thread (it then looks again).
const DAY: Duration = Duration::from_secs(24 * 3600);

/// What is parked: which protocol the Lua thread reads, and what it needs to.
enum Side {
    /// An HTTP connection between requests.
    Http {
        peers: Peers,
        shared: Arc<ListenerShared>,
    },
    /// A WebSocket connection's reader (server side) between messages.
    Ws {
        origin: WsOrigin,
        id: u64,
        max_message: usize,
    },
}

/// Who has the connection's socket (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Conn,
    Parked,
    Lua,
}

#[derive(Debug)]
struct LaneState {
    owner: Owner,
    /// When the connection last finished a response (its keep-alive time runs from there).
    idle_since: Instant,
    /// Bytes the Lua thread read and handed back.
    read_ahead: Vec<u8>,
    /// The request the Lua thread started, until settled or claimed.
    in_flight: Option<Opened>,
    /// The connection thread waits for the Lua thread to let go of the socket: poke it then.
    conn_waiting: bool,
    /// Bytes arrived while the Lua thread had the socket: re-arm when parking it again.
    missed: bool,
}

/// What [`Lane::park`] hands back to the connection's thread.
pub(crate) enum Resumed {
    /// Read on, starting with these bytes; (HTTP) the connection has been idle since the instant
    /// given.
    Read(Vec<u8>, Instant),
    /// Serve the exchange the Lua thread started (HTTP).
    Serve(Opened),
}

/// One connection's parking place.
pub(crate) struct Lane {
    /// Its key in the poller, unique in the process.
    key: u64,
    stream: Arc<Socket>,
    waker: Arc<Waker>,
    side: Side,
    poller: Arc<Poller>,
    state: Mutex<LaneState>,
}

impl Lane {
    /// A lane for the HTTP connection on `stream`, when the runtime has a poller and the
    /// connection a waker.
    pub(crate) fn http(
        stream: Arc<Socket>,
        peers: &Peers,
        shared: &Arc<ListenerShared>,
    ) -> Option<Arc<Lane>> {
        let side = Side::Http {
            peers: peers.clone(),
            shared: shared.clone(),
        };
        Lane::new(stream, peers.waker.clone()?, side, &shared.events)
    }

    /// A lane for the server side of the WebSocket connection `id` on `stream`, delivering its
    /// messages as `origin`'s, when the runtime has a poller and the system an `eventfd`.
    pub(crate) fn websocket(
        stream: Arc<Socket>,
        origin: &WsOrigin,
        id: u64,
        max_message: usize,
        events: &EventSender,
    ) -> Option<Arc<Lane>> {
        let side = Side::Ws {
            origin: origin.clone(),
            id,
            max_message,
        };
        Lane::new(stream, Arc::new(Waker::new()?), side, events)
    }

    fn new(
        stream: Arc<Socket>,
        waker: Arc<Waker>,
        side: Side,
        events: &EventSender,
    ) -> Option<Arc<Lane>> {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
        let poller = events.poller()?;
        Some(Arc::new(Lane {
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            stream,
            waker,
            side,
            poller,
            state: Mutex::new(LaneState {
                owner: Owner::Conn,
                idle_since: Instant::now(),
                read_ahead: Vec::new(),
                in_flight: None,
                conn_waiting: false,
                missed: false,
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, LaneState> {
        // A poisoned lock only means another thread panicked mid-update; the data is plain.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.stream.tcp().as_raw_fd()
    }

    /// Watches the socket for the Lua thread again. Returns false if it could not.
    fn arm(self: &Arc<Self>) -> bool {
        let source: Arc<dyn Parked> = self.clone();
        self.poller.arm(self.key, self.fd(), &source)
    }

    /// Called by the connection thread between requests, with nothing buffered and the
    /// connection idle since `idle_since`: sleeps until there is work, and says what it is.
    /// `None`: the socket could not be parked; read it as usual.
    pub(crate) fn park(self: &Arc<Self>, idle_since: Instant) -> Option<Resumed> {
        {
            let mut st = self.lock();
            st.owner = Owner::Parked;
            st.idle_since = idle_since;
            st.missed = false;
        }
        if !self.arm() {
            self.lock().owner = Owner::Conn;
            return None;
        }
        let resumed = self.until_resumed();
        // This thread reads the socket now: bytes arriving are not the Lua thread's business.
        // (Done here, by the thread that arms it again when it parks, so the two never cross.)
        self.poller.disarm(self.key, self.fd());
        resumed
    }

    /// The parked thread's wait: until the socket is this thread's again (see [`Lane::park`]).
    fn until_resumed(self: &Arc<Self>) -> Option<Resumed> {
        // HTTP: the keep-alive timeout ends the wait; a request the Lua thread leaves unread is
        // looked for every response timeout. A WebSocket reader waits as long as it takes.
        let (keep_alive, response_timeout) = match &self.side {
            Side::Http { shared, .. } => (
                shared.config.keep_alive_timeout,
                shared.config.response_timeout,
            ),
            Side::Ws { .. } => (Duration::MAX, Duration::MAX),
        };
        let mut poked = false;
        let mut hung_up = false;
        let mut timed_out = false;
        loop {
            let mut st = self.lock();
            let now = Instant::now();
            let (watch, timeout) = match st.owner {
                Owner::Conn => {
                    st.conn_waiting = false;
                    if let Some(opened) = st.in_flight.take() {
                        return Some(Resumed::Serve(opened));
                    }
                    let bytes = std::mem::take(&mut st.read_ahead);
                    return Some(Resumed::Read(bytes, st.idle_since));
                }
                Owner::Parked => {
                    let left = st
                        .idle_since
                        .checked_add(keep_alive)
                        .map_or(Duration::MAX, |end| end.saturating_duration_since(now));
                    // A request the Lua thread has not taken within the response timeout (the
                    // script is busy without yielding) is read here instead, so that it is
                    // answered by that timeout at the latest, as one read by this thread would.
                    let stuck = timed_out
                        && (crate::net::readable_now(self.stream.tcp())
                            || self.stream.holds_input());
                    if left.is_zero() || hung_up || stuck {
                        // Idle too long, the client is leaving, or the Lua thread is not coming:
                        // this thread reads what is there.
                        st.owner = Owner::Conn;
                        return Some(Resumed::Read(Vec::new(), st.idle_since));
                    }
                    (true, left.min(response_timeout).min(DAY))
                }
                Owner::Lua => match &st.in_flight {
                    Some(opened) => {
                        let left = opened
                            .started
                            .checked_add(response_timeout)
                            .map_or(DAY, |end| end.saturating_duration_since(now).min(DAY));
                        if poked || left.is_zero() {
                            // The response needs this thread, or has had its time.
                            st.owner = Owner::Conn;
                            st.conn_waiting = false;
                            return st.in_flight.take().map(Resumed::Serve);
                        }
                        // Answered whole, the lane is parked again and the keep-alive time
                        // runs from the response: the Lua thread pokes, so that this thread
                        // goes back to watching it.
                        st.conn_waiting = true;
                        (false, left)
                    }
                    None => {
                        // The Lua thread is reading; it pokes when it lets go.
                        st.conn_waiting = true;
                        (false, Duration::from_secs(1))
                    }
                },
            };
            drop(st);
            let woken = if watch {
                self.waker.wait_hangup(Some(self.stream.tcp()), timeout)
            } else {
                self.waker.wait(None, timeout)
            };
            poked = woken.poked;
            hung_up = woken.socket;
            timed_out = !poked && !hung_up;
        }
    }

    /// Called by the connection thread as it ends (or hands the socket to another protocol):
    /// the socket leaves the epoll set before it may close.
    pub(crate) fn leave(&self) {
        self.poller.remove(self.key, self.fd());
    }

    /// Gives the socket back to the connection thread with `bytes` to read first.
    fn hand_back(&self, bytes: Vec<u8>) {
        let mut st = self.lock();
        st.read_ahead = bytes;
        st.owner = Owner::Conn;
        st.conn_waiting = false;
        drop(st);
        self.waker.poke();
    }

    /// What the Lua thread makes of `bytes` it read off the parked socket: the event of a small
    /// whole request or message; anything else is handed back to the connection's thread.
    fn take(self: &Arc<Self>, bytes: &[u8]) -> Option<Event> {
        match &self.side {
            Side::Http { peers, shared } => match open_fast(bytes, &self.stream, peers, shared) {
                Some((opened, event)) => {
                    self.lock().in_flight = Some(opened);
                    Some(event)
                }
                None => {
                    self.hand_back(bytes.to_vec());
                    None
                }
            },
            Side::Ws {
                origin,
                id,
                max_message,
            } => match crate::ws::frame::single_message(bytes, *max_message) {
                Some((data, binary)) => {
                    // Nothing follows from the script's side: watch for the next message.
                    self.repark(None, false);
                    Some(Event::Ws(Box::new(WsEvent {
                        origin: origin.clone(),
                        id: *id,
                        kind: WsEventKind::Message(data, binary),
                    })))
                }
                None => {
                    self.hand_back(bytes.to_vec());
                    None
                }
            },
        }
    }

    /// Parks the lane again (on the Lua thread), idle since `since`. The socket is still watched
    /// from when it was parked; it is re-armed only if bytes may be waiting that make no new edge
    /// (`rearm`: the read did not empty the socket; or bytes arrived while the Lua thread had it;
    /// or TLS, whose session may leave records in the socket).
    fn repark(self: &Arc<Self>, since: Option<Instant>, rearm: bool) {
        let mut st = self.lock();
        if let Some(since) = since {
            st.idle_since = since;
        }
        st.owner = Owner::Parked;
        let poke = std::mem::take(&mut st.conn_waiting);
        let rearm = rearm || std::mem::take(&mut st.missed) || self.stream.is_tls();
        drop(st);
        if rearm && !self.arm() {
            // Not watched: the connection thread must read it.
            self.lock().owner = Owner::Conn;
            self.waker.poke();
        } else if poke {
            self.waker.poke();
        }
    }
}

impl Parked for Lane {
    fn ready(self: Arc<Self>) -> Option<Event> {
        {
            let mut st = self.lock();
            if st.owner != Owner::Parked {
                // The connection thread took it back (or it was never parked again).
                if st.owner == Owner::Lua {
                    st.missed = true;
                }
                return None;
            }
            st.owner = Owner::Lua;
        }
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); FAST_READ];
        // Over TLS, what the records decrypt to.
        let mut plain = Vec::new();
        match self.stream.recv_nonblocking(&mut buf, &mut plain) {
            Ok(Received::Closed) => {
                // The client closed (or, over TLS, the session has something to answer): the
                // connection thread sees it.
                self.hand_back(Vec::new());
                None
            }
            Ok(Received::Nothing) => {
                // Part of a TLS record: watch for the rest.
                self.repark(None, true);
                None
            }
            Ok(Received::Bytes(bytes)) => {
                if bytes.len() >= FAST_READ {
                    // A full read may have left bytes behind, which make no new edge: re-arm
                    // (reporting them) if the lane is parked again.
                    self.lock().missed = true;
                }
                self.take(bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.repark(None, true);
                None
            }
            Err(_) => {
                // The connection thread finds the same error and ends.
                self.hand_back(Vec::new());
                None
            }
        }
    }

    fn settle(self: Arc<Self>) -> bool {
        let mut st = self.lock();
        let Some(opened) = &st.in_flight else {
            // Claimed by the connection thread.
            return true;
        };
        let exchange = &opened.exchange;
        // The common case first, with one look at the exchange: answered whole.
        if let Some(at) = exchange.take_sent_whole() {
            let opened = st.in_flight.take();
            drop(st);
            if let (Some(opened), Side::Http { shared, .. }) = (opened, &self.side) {
                opened.finish_sent(shared);
            }
            self.repark(Some(at), false);
            return true;
        }
        if !exchange.is_delivered() && !exchange.is_closed() {
            // Handed out but not taken (yet): look again next time.
            return false;
        }
        // The connection thread finishes the exchange (it claims it when poked).
        st.owner = Owner::Conn;
        st.conn_waiting = false;
        drop(st);
        self.waker.poke();
        true
    }
}
