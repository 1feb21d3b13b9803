//! An idle keep-alive connection parked with the Lua thread, so that its next request wakes no
//! other thread (see [`crate::poller`] for why).
//!
//! Between requests, with nothing buffered, the connection thread [`park`](Lane::park)s: its
//! socket joins the Lua thread's epoll set (one-shot) and the thread sleeps on its waker,
//! watching the socket only for the client hanging up. Who owns the socket is one of three
//! states, changed under the lane's lock:
//!
//! - **Parked**: nobody reads. The Lua thread takes it when the socket turns readable; the
//!   connection thread takes it back when the keep-alive time runs out or the client hangs up.
//! - **Lua**: the Lua thread read the next request. A small, complete request without a body
//!   ([`super::connection::open_fast`]) becomes an event at once, its exchange *in flight*; once
//!   the script has handled it ([`Parked::settle`]) and the response went out whole with one
//!   direct write, the lane is parked again. Anything else is handed back.
//! - **Conn**: the connection thread serves as it always does, starting with the bytes the Lua
//!   thread read ("read ahead") or the exchange in flight, which it claims when poked (the
//!   response needs it: a remainder, streaming, a body read, an abandoned response) or when the
//!   response timeout passes (so a busy script cannot keep a request from its timeout).

use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::connection::{open_fast, Opened, Peers};
use super::direct::Waker;
use super::listener::ListenerShared;
use crate::event::Event;
use crate::poller::{Parked, Poller};

/// Largest request head read by the Lua thread; a longer one goes to the connection thread.
const FAST_READ: usize = 4096;

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
}

/// What [`Lane::park`] hands back to the connection thread.
pub(crate) enum Resumed {
    /// Read the next request head, starting with these bytes; the connection has been idle since
    /// the instant given.
    Read(Vec<u8>, Instant),
    /// Serve the exchange the Lua thread started.
    Serve(Opened),
}

/// One connection's parking place.
pub(crate) struct Lane {
    stream: Arc<TcpStream>,
    waker: Arc<Waker>,
    peers: Peers,
    shared: Arc<ListenerShared>,
    poller: Arc<Poller>,
    state: Mutex<LaneState>,
}

impl Lane {
    /// A lane for the connection on `stream`, when the runtime has a poller and the connection
    /// a waker.
    pub(crate) fn new(
        stream: Arc<TcpStream>,
        peers: &Peers,
        shared: &Arc<ListenerShared>,
    ) -> Option<Arc<Lane>> {
        let waker = peers.waker.clone()?;
        let poller = shared.events.poller()?;
        Some(Arc::new(Lane {
            stream,
            waker,
            peers: peers.clone(),
            shared: shared.clone(),
            poller,
            state: Mutex::new(LaneState {
                owner: Owner::Conn,
                idle_since: Instant::now(),
                read_ahead: Vec::new(),
                in_flight: None,
                conn_waiting: false,
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, LaneState> {
        // A poisoned lock only means another thread panicked mid-update; the data is plain.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.stream.as_raw_fd()
    }

    /// Watches the socket for the Lua thread again. Returns false if it could not.
    fn arm(self: &Arc<Self>) -> bool {
        let source: Arc<dyn Parked> = self.clone();
        self.poller.arm(self.peers.connection, self.fd(), &source)
    }

    /// Called by the connection thread between requests, with nothing buffered and the
    /// connection idle since `idle_since`: sleeps until there is work, and says what it is.
    /// `None`: the socket could not be parked; read it as usual.
    pub(crate) fn park(self: &Arc<Self>, idle_since: Instant) -> Option<Resumed> {
        {
            let mut st = self.lock();
            st.owner = Owner::Parked;
            st.idle_since = idle_since;
        }
        if !self.arm() {
            self.lock().owner = Owner::Conn;
            return None;
        }
        let keep_alive = self.shared.config.keep_alive_timeout;
        let response_timeout = self.shared.config.response_timeout;
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
                    let left = (st.idle_since + keep_alive).saturating_duration_since(now);
                    // A request the Lua thread has not taken within the response timeout (the
                    // script is busy without yielding) is read here instead, so that it is
                    // answered by that timeout at the latest, as one read by this thread would.
                    let stuck = timed_out && crate::net::readable_now(&self.stream);
                    if left.is_zero() || hung_up || stuck {
                        // Idle too long, the client is leaving, or the Lua thread is not coming:
                        // this thread reads what is there.
                        st.owner = Owner::Conn;
                        return Some(Resumed::Read(Vec::new(), st.idle_since));
                    }
                    (true, left.min(response_timeout))
                }
                Owner::Lua => match &st.in_flight {
                    Some(opened) => {
                        let left =
                            (opened.started + response_timeout).saturating_duration_since(now);
                        if poked || left.is_zero() {
                            // The response needs this thread, or has had its time.
                            st.owner = Owner::Conn;
                            st.conn_waiting = false;
                            return st.in_flight.take().map(Resumed::Serve);
                        }
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
                self.waker.wait_hangup(Some(&self.stream), timeout)
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
        self.poller.remove(self.peers.connection, self.fd());
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

    /// Parks the lane again (on the Lua thread), idle since `since`.
    fn repark(self: &Arc<Self>, since: Option<Instant>) {
        let mut st = self.lock();
        if let Some(since) = since {
            st.idle_since = since;
        }
        st.owner = Owner::Parked;
        let poke = std::mem::take(&mut st.conn_waiting);
        drop(st);
        if !self.arm() {
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
                return None;
            }
            st.owner = Owner::Lua;
        }
        let mut buf = [0u8; FAST_READ];
        match crate::net::recv_nonblocking(&self.stream, &mut buf) {
            Ok(0) => {
                // The client closed: the connection thread sees it and ends.
                self.hand_back(Vec::new());
                None
            }
            Ok(n) => match open_fast(&buf[..n], &self.stream, &self.peers, &self.shared) {
                Some((opened, event)) => {
                    self.lock().in_flight = Some(opened);
                    Some(event)
                }
                None => {
                    self.hand_back(buf[..n].to_vec());
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.repark(None);
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
        if !exchange.is_delivered() && !exchange.is_closed() {
            // Handed out but not taken (yet): look again next time.
            return false;
        }
        match exchange.take_sent_whole() {
            Some(at) => {
                let opened = st.in_flight.take();
                drop(st);
                if let Some(opened) = opened {
                    opened.finish_sent(&self.shared);
                }
                self.repark(Some(at));
            }
            None => {
                // The connection thread finishes the exchange (it claims it when poked).
                st.owner = Owner::Conn;
                st.conn_waiting = false;
                drop(st);
                self.waker.poke();
            }
        }
        true
    }
}
