//! One request/response exchange, shared by the connection thread that serves it and the Lua side
//! (an API's handle) that answers it.
//!
//! The Lua thread only ever touches memory here and never waits; the socket stays with the
//! connection thread, except that a small response finished whole may be written by the Lua
//! thread with one non-blocking send while the connection thread sleeps ([`super::direct`],
//! `try_direct` below; the rest of a partial send goes to the connection thread).
//!
//! The response travels as a sequence of [`Part`]s (head, data…, end), or, for an API that
//! buffers (CraftOS's), as a draft sent whole when it is closed. Parts queue up to a
//! byte bound ([`Config::stream_buffer`](crate::Config)); an API that streams checks for room
//! and, when there is none, asks to be told ([`Exchange::ask_room`]): the connection thread then
//! sends the Lua thread a [`Event::StreamReady`] once the client has taken enough. A request body
//! that is streamed travels the other way, one piece per [`Exchange::read_body`] call, read off
//! the socket only when asked for.
//!
//! The response is finished exactly once, by whichever comes first: the script (closing the draft
//! or queueing the end), the response timeout, the handle being garbage-collected, its listener
//! being removed, or the script ending. Every later use from Lua sees it closed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::body::BodyError;
use super::direct::{Direct, DIRECT_MAX_BODY};
use super::response::{encode_response, PartWriter, Response, ResponseHead, WireOptions};
use crate::event::{Event, EventSender};
use crate::socket::Socket;

/// A piece of a response, in the order it goes out.
pub enum Part {
    /// An interim `100 Continue` (before the head only).
    Continue,
    /// The status line and header fields.
    Head(ResponseHead),
    /// Body bytes.
    Data(Vec<u8>),
    /// The end of the response.
    End,
    /// Hands the connection over (after a `101` head): the connection thread writes what is
    /// queued, then runs this with the socket and stops serving HTTP on it.
    Upgrade(Upgrade),
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Continue => f.write_str("Continue"),
            Part::Head(h) => write!(f, "Head({})", h.status),
            Part::Data(d) => write!(f, "Data({} bytes)", d.len()),
            Part::End => f.write_str("End"),
            Part::Upgrade(_) => f.write_str("Upgrade"),
        }
    }
}

/// What takes a connection over, run on its thread once the switching response is written.
pub type Upgrade = Box<dyn FnOnce(Upgraded) + Send>;

/// A connection handed over by [`Part::Upgrade`].
pub struct Upgraded {
    /// The socket (other handles on it, kept to shut it down at stop, stay valid).
    pub stream: Arc<Socket>,
    /// Bytes the client sent after the request that were already read off the socket.
    pub leftover: Vec<u8>,
}

/// The response was already finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Why a part or a head change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The response is finished (by the script, the response timeout, or the server).
    Closed,
    /// The head has already gone out; status and headers can no longer change.
    HeadSent,
    /// The client has gone (or the response broke its own framing); nothing more reaches it.
    Gone,
}

/// What a request-body read found.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyPoll {
    /// The next piece of the body.
    Data(Vec<u8>),
    /// The body is complete.
    End,
    /// Nothing yet: the connection thread is reading, and [`Event::StreamReady`] follows.
    Pending,
    /// The body could not be read (too large, too slow, malformed, or the client left).
    Failed(BodyError),
}

/// Whether the connection can take more of the response now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// Below the bound: go on.
    Free,
    /// At or over the bound: wait for [`Event::StreamReady`] before queueing more.
    Full,
}

/// The state both sides share.
#[derive(Debug)]
struct State {
    /// The response as a buffering API builds it before its head goes out: status, headers, and
    /// the body written so far (after a flush, the body written since).
    draft: Response,
    /// Parts waiting for the connection thread.
    parts: VecDeque<Part>,
    /// Data bytes queued and not yet written.
    queued: usize,
    /// The head has been queued (from the draft or as a part).
    head_queued: bool,
    /// The Lua side finished the response: the draft is complete, or `End` is queued.
    closed: bool,
    /// Abandoned after its head went out: the connection is closed with the body unfinished.
    aborted: bool,
    /// Nothing more reaches the client.
    gone: bool,
    /// The Lua side asked to be told when there is room, a body piece, or the end.
    notify: bool,
    /// A body read the Lua side asked for and the connection thread has not started (bytes).
    body_wanted: Option<usize>,
    /// What the last body read found, not yet taken.
    body: Option<BodyPoll>,
    /// Whether the connection thread is reading the body now.
    body_reading: bool,
    /// Set when the Lua side may write a whole response to the socket itself.
    direct: Option<Direct>,
    /// The connection thread is doing work it took (writing parts, reading the body): the Lua
    /// side must not write to the socket.
    conn_busy: bool,
    /// The connection thread sleeps on its [`Waker`](super::direct::Waker): wake it there.
    polling: bool,
    /// The socket became readable while the connection thread waited (the client's next
    /// request, or its closing): stop watching it for this exchange.
    socket_seen: bool,
    /// The Lua side wrote the response (or its start) to the socket itself.
    sent: Option<Sent>,
}

/// A response the Lua side wrote itself (see [`super::direct`]).
#[derive(Debug)]
pub struct Sent {
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
    /// What the socket did not take, for the connection thread to write.
    pub rest: Vec<u8>,
    /// Over TLS: records of the response wait in the session for the connection thread to send.
    pub flush: bool,
    /// When the response was finished (the keep-alive idle time runs from there).
    pub at: Instant,
}

/// Shared between a connection thread and a Lua handle.
#[derive(Debug)]
pub struct Exchange {
    id: u64,
    state: Mutex<State>,
    /// Wakes the connection thread (parts, a close, a body read).
    wake: Condvar,
    /// Whether the request reached the script (its handles were built).
    delivered: AtomicBool,
    /// Whether the response timeout applies after delivery (see [`Exchange::new`]).
    timed: bool,
    /// Queued data bytes at which [`Room::Full`] is reported.
    bound: usize,
    events: EventSender,
}

/// What the connection thread is to do next.
pub enum Work {
    /// Send this complete response (a closed draft, or the server's own error response).
    Complete(Response),
    /// Write these parts.
    Parts(VecDeque<Part>),
    /// Read up to this many bytes of the request body and [`deliver_body`](Exchange::deliver_body)
    /// them.
    ReadBody(usize),
    /// Close the connection without finishing the response.
    Abort,
    /// The Lua side wrote the response; write what is left of it, and the exchange is over.
    Sent(Sent),
}

impl Exchange {
    /// A new exchange with the default response (`200`, no headers, empty body). `bound` is the
    /// stream buffer; `events` carries [`Event::StreamReady`] to the Lua thread. `timed` says
    /// whether the response timeout still applies once the script has the request (CraftOS's
    /// rule); without it, the timeout only answers `503` for a request the script never took.
    pub fn new(bound: usize, events: EventSender, timed: bool) -> Arc<Exchange> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Arc::new(Exchange {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(State {
                draft: Response::status(200),
                parts: VecDeque::new(),
                queued: 0,
                head_queued: false,
                closed: false,
                aborted: false,
                gone: false,
                notify: false,
                body_wanted: None,
                body: None,
                body_reading: false,
                direct: None,
                conn_busy: false,
                polling: false,
                socket_seen: false,
                sent: None,
            }),
            wake: Condvar::new(),
            delivered: AtomicBool::new(false),
            timed,
            bound: bound.max(1),
            events,
        })
    }

    /// The id [`Event::StreamReady`] carries: unique in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Lets the Lua side write a complete small response to the socket itself, while the
    /// connection thread waits on `direct`'s waker (see [`super::direct`]). Set by the
    /// connection thread before the request is handed over.
    ///
    /// `waiting` says a next request is already read (pipelined): the socket will not tell the
    /// connection thread that this response went out, so it is woken for it.
    pub fn enable_direct(&self, direct: Direct, waiting: bool) {
        let mut st = self.lock();
        st.direct = Some(direct);
        st.socket_seen = waiting;
    }

    /// Says the connection thread sleeps on the direct waker (parked, see [`crate::lane`]):
    /// work for it pokes the waker. Set on the Lua thread before the request is delivered.
    pub fn conn_parked(&self) {
        self.lock().polling = true;
    }

    /// Whether the request reached the script.
    pub fn is_delivered(&self) -> bool {
        self.delivered.load(Ordering::SeqCst)
    }

    /// If the Lua side wrote the whole response itself and the connection may carry another
    /// request, with nothing read behind this one: takes that news (the connection thread will
    /// not see it) and returns when the response went out.
    pub fn take_sent_whole(&self) -> Option<Instant> {
        let mut st = self.lock();
        match &st.sent {
            Some(sent)
                if sent.rest.is_empty() && !sent.flush && sent.keep_alive && !st.socket_seen =>
            {
                let at = sent.at;
                st.sent = None;
                Some(at)
            }
            _ => None,
        }
    }

    /// Wakes the connection thread wherever it waits, and releases the lock.
    fn wake_conn(&self, mut st: MutexGuard<'_, State>) {
        if std::mem::take(&mut st.polling) {
            if let Some(direct) = &st.direct {
                direct.waker.poke();
            }
            return;
        }
        drop(st);
        self.wake.notify_one();
    }

    /// Writes the complete response in `st` (a closed draft whose head has not gone out, or a
    /// streamed response queued whole, head to end) to the socket from the calling (Lua)
    /// thread, if the connection allows it and the connection thread is not in the middle of
    /// the exchange. Returns whether the connection thread must still be woken: not when the
    /// socket took everything.
    fn try_direct(&self, st: &mut State) -> bool {
        let Some(direct) = st.direct.as_ref() else {
            return true;
        };
        if st.conn_busy || st.gone || st.aborted || st.sent.is_some() {
            return true;
        }
        let stopped = direct.stopped.load(Ordering::SeqCst);
        let (mut out, keep_alive) = if !st.head_queued {
            let draft = &st.draft;
            if draft.body.len() > DIRECT_MAX_BODY {
                return true;
            }
            let keep_alive =
                direct.opts.keep_alive && !draft.wants_close() && draft.status >= 200 && !stopped;
            let opts = WireOptions {
                keep_alive,
                ..direct.opts
            };
            (encode_response(draft, opts), keep_alive)
        } else {
            // Only a response queued from its head to its end, nothing of it taken yet.
            if !matches!(st.parts.front(), Some(Part::Head(_)))
                || !matches!(st.parts.back(), Some(Part::End))
                || st.queued > DIRECT_MAX_BODY
            {
                return true;
            }
            let mut writer = PartWriter::new(direct.opts);
            // Data past the writer's coalescing size lands here; the rest stays in the writer.
            let mut out = Vec::new();
            for part in &st.parts {
                let done = match part {
                    Part::Head(head) => {
                        writer.head(head, !stopped);
                        Ok(())
                    }
                    Part::Data(data) => writer.data(&mut out, data),
                    Part::End => writer.end(),
                    // Interim responses and hand-overs stay with the connection thread.
                    Part::Continue | Part::Upgrade(_) => return true,
                };
                // A broken Content-Length: the connection thread reports it and closes.
                if done.is_err() {
                    return true;
                }
            }
            if out.is_empty() {
                out = writer.take_queued();
            } else if writer.flush(&mut out).is_err() {
                return true;
            }
            (out, writer.keep_alive())
        };
        let taken = direct.send(&out).unwrap_or(0);
        // Keep only what is left (nothing, usually): the exchange lives on while the connection
        // sits idle until the client's next request.
        let out = if taken >= out.len() {
            Vec::new()
        } else {
            out.split_off(taken)
        };
        let flush = direct.stream.pending();
        // The connection thread learns of a response sent whole from its socket (the client's
        // next request), unless it stopped watching it (a request already waiting behind this
        // one): then it must be woken, as for a remainder to write. A response that ends the
        // connection wakes it too: the client waits for the close, and sends nothing more.
        let wake = !out.is_empty() || flush || st.socket_seen || !keep_alive;
        st.sent = Some(Sent {
            keep_alive,
            rest: out,
            flush,
            at: Instant::now(),
        });
        st.parts = VecDeque::new();
        st.queued = 0;
        st.draft = Response::status(200);
        wake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update; the data is plain.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // --- The Lua side ---------------------------------------------------------------------

    /// Notes that the script received the request (its handles exist).
    pub fn mark_delivered(&self) {
        self.delivered.store(true, Ordering::SeqCst);
    }

    /// Whether the response is finished.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Whether nothing more reaches the client.
    pub fn is_gone(&self) -> bool {
        self.lock().gone
    }

    /// Runs `f` on the draft's body while the response is open. Once the client is gone, what is
    /// written is dropped.
    pub fn write(&self, f: impl FnOnce(&mut Vec<u8>)) -> Result<(), Closed> {
        let mut st = self.lock();
        if st.closed {
            return Err(Closed);
        }
        if !st.gone {
            f(&mut st.draft.body);
        }
        Ok(())
    }

    /// Runs `f` on the draft's status and headers, before the head goes out.
    pub fn with_head<T>(&self, f: impl FnOnce(&mut Response) -> T) -> Result<T, PushError> {
        let mut st = self.lock();
        if st.closed {
            return Err(PushError::Closed);
        }
        if st.head_queued {
            return Err(PushError::HeadSent);
        }
        Ok(f(&mut st.draft))
    }

    /// Finishes the response. If its head has not gone out, the draft is sent whole with a
    /// `Content-Length`; otherwise what the draft holds goes out as the last data. Closing after
    /// the client has gone is not an error.
    pub fn close(&self) -> Result<(), Closed> {
        let mut st = self.lock();
        if st.closed {
            return Err(Closed);
        }
        st.closed = true;
        if st.head_queued {
            let rest = std::mem::take(&mut st.draft.body);
            if !rest.is_empty() {
                st.queued += rest.len();
                st.parts.push_back(Part::Data(rest));
            }
            st.parts.push_back(Part::End);
        }
        if !self.try_direct(&mut st) {
            return Ok(());
        }
        self.wake_conn(st);
        Ok(())
    }

    /// Sends the draft's head (if it has not gone out, without a length: the body follows
    /// chunked) and what its body holds, and goes on streaming. Fails once the client is gone.
    pub fn flush(&self) -> Result<Room, PushError> {
        let mut st = self.lock();
        if st.closed {
            return Err(PushError::Closed);
        }
        if st.gone {
            return Err(PushError::Gone);
        }
        if !st.head_queued {
            st.head_queued = true;
            let head = ResponseHead {
                status: st.draft.status,
                reason: st.draft.reason.take(),
                headers: std::mem::take(&mut st.draft.headers),
                length: None,
            };
            st.parts.push_back(Part::Head(head));
        }
        let data = std::mem::take(&mut st.draft.body);
        if !data.is_empty() {
            st.queued += data.len();
            st.parts.push_back(Part::Data(data));
        }
        let room = self.room(&mut st);
        self.wake_conn(st);
        Ok(room)
    }

    /// Queues `part` for a streaming API. A head, `End` and `Upgrade` finish what they must:
    /// after `End` or `Upgrade` the response is closed.
    pub fn push(&self, part: Part) -> Result<Room, PushError> {
        self.push_all([part])
    }

    /// Queues several parts at once (one lock, one wake-up of the connection thread: a head, its
    /// body and the end of a small response go out in one write). Stops at the first part that
    /// is refused.
    pub fn push_all(&self, parts: impl IntoIterator<Item = Part>) -> Result<Room, PushError> {
        let mut st = self.lock();
        let mut result = Ok(());
        for part in parts {
            result = self.queue(&mut st, part);
            if result.is_err() {
                break;
            }
        }
        let room = self.room(&mut st);
        if result.is_ok() && st.closed && !self.try_direct(&mut st) {
            return result.map(|()| room);
        }
        self.wake_conn(st);
        result.map(|()| room)
    }

    fn queue(&self, st: &mut State, part: Part) -> Result<(), PushError> {
        if st.closed {
            return Err(PushError::Closed);
        }
        if st.gone {
            return Err(PushError::Gone);
        }
        match &part {
            Part::Head(_) if st.head_queued => return Err(PushError::HeadSent),
            Part::Continue if st.head_queued => return Err(PushError::HeadSent),
            Part::Head(_) => st.head_queued = true,
            Part::Data(d) => st.queued += d.len(),
            Part::End | Part::Upgrade(_) => st.closed = true,
            Part::Continue => {}
        }
        st.parts.push_back(part);
        Ok(())
    }

    /// Whether there is room; when there is none, the Lua side will be told once there is.
    fn room(&self, st: &mut State) -> Room {
        if st.queued >= self.bound {
            st.notify = true;
            Room::Full
        } else {
            Room::Free
        }
    }

    /// Whether the connection can take more of the response now (or never will: the exchange is
    /// over, and the next push says so). If not, [`Event::StreamReady`] with this exchange's id is
    /// sent once the client has taken half the bound.
    pub fn ask_room(&self) -> bool {
        let mut st = self.lock();
        let ready = st.gone || st.closed || st.queued < self.bound;
        st.notify |= !ready;
        ready
    }

    /// The next piece of a streamed request body, at most `max` bytes: what an earlier read
    /// found, or [`BodyPoll::Pending`] while the connection thread reads.
    pub fn read_body(&self, max: usize) -> BodyPoll {
        let mut st = self.lock();
        if let Some(found) = st.body.take() {
            return found;
        }
        if st.gone {
            return BodyPoll::Failed(BodyError::Vanished);
        }
        st.notify = true;
        if st.body_wanted.is_none() && !st.body_reading {
            st.body_wanted = Some(max.max(1));
            self.wake_conn(st);
        }
        BodyPoll::Pending
    }

    /// Finishes the response with a bare error status, dropping what the script buffered, unless
    /// it is already finished. If its head has gone out, the connection is closed with the body
    /// unfinished (so the client sees it incomplete). Returns whether it was still open.
    pub fn abandon(&self, status: u16) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        st.closed = true;
        if st.head_queued {
            st.aborted = true;
        } else {
            st.draft = Response::plain(status);
        }
        self.wake_conn(st);
        true
    }

    // --- The connection thread ------------------------------------------------------------

    /// Waits until there is something to do or `deadline` passes. At the deadline the response is
    /// finished as it stands: a draft is sent as buffered (as CraftOS-PC does), or answered `503`
    /// if the request never reached the script (it is not pulling events); a streamed response
    /// gets the draft's remaining bytes and its end.
    pub fn next_work(&self, deadline: Instant) -> Work {
        let mut st = self.lock();
        st.conn_busy = false;
        let work = loop {
            if let Some(sent) = st.sent.take() {
                break Work::Sent(sent);
            }
            // What was queued before an abandon still goes out; then the connection is cut.
            if !st.parts.is_empty() {
                break Work::Parts(std::mem::take(&mut st.parts));
            }
            if st.aborted {
                break Work::Abort;
            }
            if st.closed && !st.head_queued {
                break Work::Complete(std::mem::replace(&mut st.draft, Response::status(200)));
            }
            if let Some(max) = st.body_wanted.take() {
                st.body_reading = true;
                break Work::ReadBody(max);
            }
            let delivered = self.delivered.load(Ordering::SeqCst);
            let untimed = delivered && !self.timed;
            let left = deadline.saturating_duration_since(Instant::now());
            if !untimed && left.is_zero() {
                break self.time_out(&mut st, delivered);
            }
            st = self.sleep(st, (!untimed).then_some(left));
        };
        st.conn_busy = !matches!(work, Work::Sent(_));
        work
    }

    /// Sleeps until woken, or `timeout` passes: on the waker (and the socket, until it turns
    /// readable) when direct writes are on, else on the condition variable.
    fn sleep<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        timeout: Option<std::time::Duration>,
    ) -> MutexGuard<'a, State> {
        let Some(direct) = &st.direct else {
            return match timeout {
                None => self.wake.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(left) => self
                    .wake
                    .wait_timeout(st, left)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0),
            };
        };
        let waker = direct.waker.clone();
        let stream = direct.stream.clone();
        // Even without a response deadline, wake within the keep-alive timeout: a response the
        // Lua side sent itself leaves the connection idle from then on.
        let idle = direct.keep_alive_timeout;
        let watch = (!st.socket_seen).then_some(stream.tcp());
        st.polling = true;
        drop(st);
        let woken = waker.wait(watch, timeout.map_or(idle, |t| t.min(idle)));
        let mut st = self.lock();
        st.polling = false;
        st.socket_seen |= woken.socket;
        st
    }

    /// The response deadline passed: the response is finished as it stands.
    fn time_out(&self, st: &mut State, delivered: bool) -> Work {
        st.closed = true;
        if !st.head_queued {
            if delivered {
                log::debug!("response not closed in time; sending what was buffered");
            } else {
                log::debug!("request never reached the script; answering 503");
                st.draft = Response::plain(503);
            }
            return Work::Complete(std::mem::replace(&mut st.draft, Response::status(200)));
        }
        log::debug!("streamed response idle for the response timeout; ending it");
        let rest = std::mem::take(&mut st.draft.body);
        let mut parts = VecDeque::new();
        if !rest.is_empty() {
            parts.push_back(Part::Data(rest));
        }
        parts.push_back(Part::End);
        Work::Parts(parts)
    }

    /// The connection thread wrote `bytes` data bytes; tells a waiting Lua side once the queue is
    /// at half the bound or less.
    pub fn written(&self, bytes: usize) {
        let mut st = self.lock();
        st.queued = st.queued.saturating_sub(bytes);
        let tell = st.notify && st.queued <= self.bound / 2;
        if tell {
            st.notify = false;
        }
        drop(st);
        if tell {
            self.tell();
        }
    }

    /// The connection thread read a piece of the request body (or its end, or failed).
    pub fn deliver_body(&self, found: BodyPoll) {
        let mut st = self.lock();
        st.body_reading = false;
        st.body = Some(found);
        let tell = std::mem::take(&mut st.notify);
        drop(st);
        if tell {
            self.tell();
        }
    }

    /// Nothing more reaches the client (it left, or the response broke its framing): later
    /// pushes fail, and a waiting Lua side is told.
    pub fn set_gone(&self) {
        let mut st = self.lock();
        st.gone = true;
        st.parts.clear();
        st.queued = 0;
        // The socket and the waker are the connection's: let them go with it.
        st.direct = None;
        let tell = std::mem::take(&mut st.notify);
        drop(st);
        if tell {
            self.tell();
        }
    }

    fn tell(&self) {
        // The Lua thread may be gone (the script ended); then nobody waits.
        self.events.send_blocking(Event::StreamReady(self.id));
    }
}

/// Owned by the Lua side. If it is dropped while the response is still open (the handle was
/// garbage-collected, or the event was never delivered, or the VM closed), the client is answered
/// with `status_on_drop` instead of being left waiting.
#[derive(Debug)]
pub struct ExchangeGuard {
    exchange: Arc<Exchange>,
    status_on_drop: u16,
}

impl ExchangeGuard {
    /// Guards `exchange`.
    pub fn new(exchange: Arc<Exchange>) -> ExchangeGuard {
        ExchangeGuard {
            exchange,
            status_on_drop: 500,
        }
    }

    /// The shared exchange.
    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    /// Sets the status sent if this guard is dropped while the response is open.
    pub fn set_status_on_drop(&mut self, status: u16) {
        self.status_on_drop = status;
    }
}

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        if self.exchange.abandon(self.status_on_drop) {
            log::debug!(
                "response handle dropped while open; answered {}",
                self.status_on_drop
            );
        }
    }
}
