//! One WebSocket connection: a reader thread and a writer thread on a cloned `TcpStream`.
//!
//! tungstenite has no split for blocking use, so the connection is split by hand:
//! - the **reader** thread owns a `WebSocket` over [`Duplex`], whose reads come from the socket
//!   and whose writes (the handshake response, automatic pong and close replies) go to the writer
//!   as whole frames; it turns messages into events for the Lua thread;
//! - the **writer** thread owns a second `WebSocket` over a clone of the socket, used only to
//!   frame outgoing messages, and writes the reader's replies in order with them.
//!
//! A `send` from Lua never blocks. On the server side, when the writer has nothing queued and is
//! not writing, the Lua thread puts the frame on the socket itself with a non-blocking send
//! (one echo then wakes only the reader, not the writer too); whatever the socket does not take
//! goes to the writer. Otherwise the message joins the writer's (counted, bounded) queue and
//! reaches the wire as soon as the writer thread wakes; a slow client can never block the Lua
//! thread (a full queue closes that client instead). Nothing polls: both threads block on their
//! socket or channel.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::{WsEvent, WsEventKind, WsOrigin};
use crate::event::{Event, EventSender};
use crate::http::listener::OwedResponse;
use crate::lane::{Lane, Resumed};

/// What the writer thread is asked to do.
#[derive(Debug)]
pub enum Out {
    /// Bytes the reader's `WebSocket` produced (handshake response, pong, close reply).
    Raw(Vec<u8>),
    /// A message from the script.
    Message { data: Vec<u8>, binary: bool },
    /// A ping or pong frame from the script (opcode 9 or 10).
    Control { ping: bool, data: Vec<u8> },
    /// Send a Close frame, then stop.
    Close { code: u16, reason: String },
    /// Stop without sending anything more.
    Stop,
}

/// Who writes to a connection's socket: its writer thread, or (server side, when the writer is
/// idle) the Lua thread.
#[derive(Debug, Default)]
struct Wire {
    /// Items handed to the writer and not yet written, of every kind.
    in_flight: AtomicUsize,
    /// Held by whoever is writing to the socket. The writer waits for it; the Lua thread only
    /// tries it, and hands its message to the writer when it is taken.
    writing: Mutex<()>,
}

/// The sending end of a writer's queue, counting what is in flight.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: Sender<Out>,
    wire: Arc<Wire>,
}

impl Outbox {
    /// Queues `out` for the writer; fails if the writer is gone.
    pub fn send(&self, out: Out) -> Result<(), Out> {
        self.wire.in_flight.fetch_add(1, Ordering::SeqCst);
        self.tx.send(out).map_err(|e| {
            self.wire.in_flight.fetch_sub(1, Ordering::SeqCst);
            e.into_inner()
        })
    }
}

/// The reader's stream: reads from the socket, writes go to the writer thread as whole frames
/// (tungstenite buffers a frame completely and hands it over in one `write`).
///
/// Server side, it hands tungstenite one frame at a time ([`Duplex::framed`]): tungstenite then
/// never holds bytes past the frame it is reading, so once it has returned a message and this
/// has nothing buffered ([`Duplex::at_boundary`]), someone else may read the socket (the Lua
/// thread, while the reader is parked: [`crate::lane`]) and hand back what it does not take
/// ([`Duplex::extend`]).
pub struct Duplex {
    read: TcpStream,
    out: Outbox,
    frames: Option<Frames>,
}

/// Bytes read off the socket and not yet handed to tungstenite, and how much of the frame being
/// handed over is left.
#[derive(Debug, Default)]
struct Frames {
    buf: Vec<u8>,
    start: usize,
    left_in_frame: u64,
}

impl Duplex {
    /// A duplex over `read`, writing through `out`.
    pub fn new(read: TcpStream, out: Outbox) -> Duplex {
        Duplex {
            read,
            out,
            frames: None,
        }
    }

    /// A duplex that hands its reader one frame at a time, starting with `leftover` (bytes
    /// already read from the socket, from the start of a frame).
    pub fn framed(read: TcpStream, out: Outbox, leftover: Vec<u8>) -> Duplex {
        Duplex {
            read,
            out,
            frames: Some(Frames {
                buf: leftover,
                start: 0,
                left_in_frame: 0,
            }),
        }
    }

    /// Whether every byte read off the socket has been handed over, ending on a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.frames
            .as_ref()
            .is_some_and(|f| f.left_in_frame == 0 && f.start == f.buf.len())
    }

    /// Bytes someone else read off the socket for this connection, from the start of a frame,
    /// to be handed over first.
    pub fn extend(&mut self, bytes: &[u8]) {
        if let Some(f) = &mut self.frames {
            f.buf.extend_from_slice(bytes);
        }
    }
}

impl Read for Duplex {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(f) = &mut self.frames else {
            return self.read.read(out);
        };
        loop {
            let buffered = &f.buf[f.start..];
            if f.left_in_frame == 0 {
                if let Some(len) = super::frame::frame_len(buffered) {
                    f.left_in_frame = len;
                }
            }
            // Within the frame being handed over (or, without its length yet, a partial header
            // that the peer's end cut short: tungstenite reports it).
            if !buffered.is_empty() && f.left_in_frame > 0 {
                let n = out
                    .len()
                    .min(buffered.len())
                    .min(f.left_in_frame.min(usize::MAX as u64) as usize);
                out[..n].copy_from_slice(&buffered[..n]);
                f.start += n;
                f.left_in_frame -= n as u64;
                if f.start == f.buf.len() {
                    f.buf.clear();
                    f.start = 0;
                }
                return Ok(n);
            }
            let mut chunk = [0u8; 4096];
            let n = self.read.read(&mut chunk)?;
            if n == 0 {
                // The peer closed: what is buffered (part of a header) goes to tungstenite first.
                if buffered.is_empty() {
                    return Ok(0);
                }
                let n = out.len().min(buffered.len());
                out[..n].copy_from_slice(&buffered[..n]);
                f.start += n;
                return Ok(n);
            }
            f.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out
            .send(Out::Raw(buf.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "writer thread gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection's controls, shared by the script's handle and its server.
#[derive(Debug)]
pub struct Control {
    /// Unique per process; the script sees it as the client ID.
    pub id: u64,
    out: Outbox,
    /// A handle on the socket to abort it (and, server side, to send on it directly); released
    /// when the connection has ended, so a handle the script keeps (or has not collected yet)
    /// does not hold the file descriptor.
    socket: Mutex<Option<TcpStream>>,
    /// Whether the Lua thread may write frames itself (server side: frames are not masked).
    direct: bool,
    closed: Arc<AtomicBool>,
    max_message: usize,
    queued: Arc<AtomicUsize>,
    send_queue: usize,
}

/// Why a send failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// Larger than the configured maximum message size.
    TooLarge,
    /// The connection is closed.
    Closed,
}

impl Control {
    /// Whether the connection has closed (either side).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Queues a message for the writer. A client whose queue is full is too slow to keep: it is
    /// closed rather than letting the script wait.
    pub fn send(&self, data: Vec<u8>, binary: bool) -> Result<(), SendError> {
        if data.len() > self.max_message {
            return Err(SendError::TooLarge);
        }
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        let Err(data) = self.send_direct(data, binary) else {
            return Ok(());
        };
        // The queue itself is unbounded (so an idle client costs no preallocated slots); this
        // count bounds it.
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.send_queue {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            log::warn!("websocket client {} is not reading; closing it", self.id);
            self.abort();
            return Err(SendError::Closed);
        }
        self.out
            .send(Out::Message { data, binary })
            .map_err(|_| SendError::Closed)
    }

    /// Writes a message frame to the socket from the calling (Lua) thread when the writer is
    /// idle with nothing queued; what the socket does not take goes to the writer, in order.
    /// Gives the data back when the writer must send it all.
    fn send_direct(&self, data: Vec<u8>, binary: bool) -> Result<(), Vec<u8>> {
        if !self.direct || data.len() > DIRECT_MAX_FRAME {
            return Err(data);
        }
        let Ok(_writing) = self.out.wire.writing.try_lock() else {
            return Err(data);
        };
        if self.out.wire.in_flight.load(Ordering::SeqCst) != 0 {
            return Err(data);
        }
        let socket = self.lock_socket();
        let Some(socket) = socket.as_ref() else {
            return Err(data);
        };
        let header = FrameHeader {
            opcode: OpCode::Data(if binary { Data::Binary } else { Data::Text }),
            ..FrameHeader::default()
        };
        let mut head = Vec::with_capacity(14);
        if header.format(data.len() as u64, &mut head).is_err() {
            return Err(data);
        }
        let taken = match crate::net::send_nonblocking(socket, &[&head, &data]) {
            Ok(taken) => taken,
            // The writer meets the same error and ends the connection.
            Err(_) => return Err(data),
        };
        if taken == head.len() + data.len() {
            return Ok(());
        }
        let mut rest = Vec::with_capacity(head.len() + data.len() - taken);
        if taken < head.len() {
            rest.extend_from_slice(&head[taken..]);
            rest.extend_from_slice(&data);
        } else {
            rest.extend_from_slice(&data[taken - head.len()..]);
        }
        // The writer takes it once `_writing` is released, before anything queued after it.
        let _ = self.out.send(Out::Raw(rest));
        Ok(())
    }

    /// Queues a ping (or, with `ping` false, an unsolicited pong) carrying `data` (at most 125
    /// bytes, the limit of a control frame).
    pub fn control_frame(&self, ping: bool, data: Vec<u8>) -> Result<(), SendError> {
        if data.len() > 125 {
            return Err(SendError::TooLarge);
        }
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        self.out
            .send(Out::Control { ping, data })
            .map_err(|_| SendError::Closed)
    }

    /// Closes the connection with a Close frame (`code`, `reason`). Never fails.
    pub fn close(&self, code: u16, reason: &str) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let msg = Out::Close {
            code,
            reason: reason.to_string(),
        };
        if self.out.send(msg).is_err() {
            self.abort();
        }
    }

    /// Drops the connection at once (both threads see their socket fail).
    pub fn abort(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(socket) = self.lock_socket().as_ref() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Lets go of the socket once the connection has ended (both threads are done with it).
    pub fn release(&self) {
        self.lock_socket().take();
    }

    fn lock_socket(&self) -> std::sync::MutexGuard<'_, Option<TcpStream>> {
        self.socket.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Largest message the Lua thread writes itself (see [`Control::send`]); larger ones go through
/// the writer.
const DIRECT_MAX_FRAME: usize = 64 * 1024;

/// The script's handle on a connection. Dropping it (the handle was garbage-collected, or the
/// connect event was never delivered) closes the connection with 1001 (going away).
#[derive(Debug)]
pub struct Link(pub Arc<Control>);

impl Drop for Link {
    fn drop(&mut self) {
        self.0.close(1001, "");
    }
}

/// Limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message accepted or sent.
    pub max_message: usize,
    /// Outgoing messages queued before the client counts as too slow.
    pub send_queue: usize,
    /// Stack size of the two threads.
    pub stack_size: usize,
    /// Whether the two threads run as batch threads ([`crate::sched`]).
    pub batch_threads: bool,
    /// How long a write may wait for a client that reads nothing (`--write-timeout`).
    pub write_timeout: std::time::Duration,
}

impl Limits {
    /// The limits `config` sets.
    pub fn of(config: &crate::config::Config) -> Limits {
        Limits {
            max_message: config.ws_max_message,
            send_queue: config.ws_send_queue,
            stack_size: config.thread_stack_size,
            batch_threads: config.batch_io_threads,
            write_timeout: config.write_timeout,
        }
    }
}

/// tungstenite's configuration for our connections: a small read buffer (idle clients stay
/// cheap), no write buffering (each message goes out at once), our message limit.
pub fn ws_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(limits.max_message.saturating_mul(2).max(1 << 20))
        .max_message_size(Some(limits.max_message))
        .max_frame_size(Some(limits.max_message))
}

/// The channel and writer thread of a new connection, before its handshake.
pub struct Pending {
    /// The id the script will see.
    pub id: u64,
    /// For the reader's [`Duplex`].
    pub out: Outbox,
    role: Role,
    socket: TcpStream,
    closed: Arc<AtomicBool>,
    queued: Arc<AtomicUsize>,
    limits: Limits,
    writer: JoinHandle<()>,
}

/// Starts the writer thread of a connection on `stream` (role: server or client).
/// `owed` keeps the runtime from exiting before this writer has finished (at most the close grace
/// period after the connection is closed).
pub fn start_writer(
    stream: &TcpStream,
    id: u64,
    role: Role,
    limits: Limits,
    owed: OwedResponse,
) -> io::Result<Pending> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let out = Outbox {
        tx,
        wire: Arc::new(Wire::default()),
    };
    let writer_wire = out.wire.clone();
    let queued = Arc::new(AtomicUsize::new(0));
    let writer_queued = queued.clone();
    let socket = stream.try_clone()?;
    let writer_stream = stream.try_clone()?;
    let config = ws_config(&limits);
    let writer = std::thread::Builder::new()
        .name("ccserve-ws-write".into())
        .stack_size(limits.stack_size)
        .spawn(move || {
            crate::sched::batch_thread(limits.batch_threads);
            let _owed = owed;
            write_loop(
                WebSocket::from_raw_socket(writer_stream, role, Some(config)),
                rx,
                &writer_queued,
                &writer_wire,
            )
        })?;
    Ok(Pending {
        id,
        out,
        role,
        socket,
        closed: Arc::new(AtomicBool::new(false)),
        queued,
        limits,
        writer,
    })
}

impl Pending {
    /// The controls of this connection, for the script's handle.
    pub fn control(&self) -> io::Result<Arc<Control>> {
        Ok(Arc::new(Control {
            id: self.id,
            out: self.out.clone(),
            socket: Mutex::new(Some(self.socket.try_clone()?)),
            direct: self.role == Role::Server,
            closed: self.closed.clone(),
            max_message: self.limits.max_message,
            queued: self.queued.clone(),
            send_queue: self.limits.send_queue.max(1),
        }))
    }

    /// Gives up before the handshake completed: drops the connection and waits for the writer.
    pub fn abandon(self) {
        let _ = self.socket.shutdown(Shutdown::Both);
        self.finish();
    }

    /// Tells the writer to stop once what is queued is written (a Close frame already queued
    /// still goes out), and waits for it to end. The writer ends promptly: a write to a client
    /// that does not read fails at the write timeout, or at once if the socket is shut down.
    pub fn finish(self) {
        let _ = self.out.send(Out::Stop);
        if self.writer.join().is_err() {
            log::error!("websocket writer thread of client {} panicked", self.id);
        }
    }
}

/// How long after our Close frame the peer has to answer before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

fn write_loop(mut ws: WebSocket<TcpStream>, rx: Receiver<Out>, queued: &AtomicUsize, wire: &Wire) {
    let mut closing = false;
    loop {
        let next = if closing {
            rx.recv_timeout(CLOSE_GRACE).ok()
        } else {
            rx.recv().ok()
        };
        let Some(out) = next else { break };
        if let Out::Message { .. } = out {
            queued.fetch_sub(1, Ordering::SeqCst);
        }
        // Nobody else writes meanwhile; the item counts as in flight until it is written.
        let _writing = wire.writing.lock().unwrap_or_else(|p| p.into_inner());
        let result = match out {
            // After our own Close frame, nothing else may follow.
            Out::Raw(_) | Out::Message { .. } | Out::Control { .. } if closing => Ok(()),
            Out::Raw(bytes) => ws
                .get_mut()
                .write_all(&bytes)
                .map_err(tungstenite::Error::Io),
            Out::Message { data, binary } => {
                let opcode = OpCode::Data(if binary { Data::Binary } else { Data::Text });
                // Text goes out as the script's bytes, unchecked, as in CraftOS-PC.
                ws.send(Message::Frame(Frame::message(data, opcode, true)))
            }
            Out::Control { ping, data } => ws.send(if ping {
                Message::Ping(data.into())
            } else {
                Message::Pong(data.into())
            }),
            Out::Close { code, reason } => {
                closing = true;
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                ws.close(Some(frame)).and_then(|()| ws.flush())
            }
            Out::Stop => break,
        };
        wire.in_flight.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(()) => {}
            Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {}
            Err(e) => {
                log::debug!("websocket write failed: {e}");
                break;
            }
        }
    }
    // Wake the reader if it is still blocked, so both threads end.
    let _ = ws.get_mut().shutdown(Shutdown::Both);
}

/// Runs a server-side connection whose opening handshake is done, on the calling thread until
/// it ends. `admit` sees the connection's controls before the script does and may refuse it
/// with a close code and reason (sent instead of announcing the connection).
pub fn run_server_side(
    stream: &Arc<TcpStream>,
    pending: Pending,
    leftover: Vec<u8>,
    origin: &WsOrigin,
    events: &EventSender,
    admit: impl FnOnce(&Arc<Control>) -> Option<(u16, &'static str)>,
) {
    let Ok(read_half) = stream.try_clone() else {
        pending.abandon();
        return;
    };
    // Handed over frame by frame, the reader can park with the Lua thread between messages.
    let duplex = Duplex::framed(read_half, pending.out.clone(), leftover);
    let ws = WebSocket::from_raw_socket(duplex, Role::Server, Some(ws_config(&pending.limits)));
    let _ = stream.set_read_timeout(None);
    let Ok(control) = pending.control() else {
        pending.abandon();
        return;
    };
    if let Some((code, reason)) = admit(&control) {
        // The writer sends the Close frame, then stops.
        control.close(code, reason);
        control.release();
        pending.finish();
        return;
    }
    let connected = Event::Ws(Box::new(WsEvent {
        origin: origin.clone(),
        id: pending.id,
        kind: WsEventKind::Connected(Link(control.clone())),
    }));
    if events.send_blocking(connected) {
        let lane = Lane::websocket(
            Arc::new(crate::socket::Socket::shared(stream.clone())),
            origin,
            pending.id,
            pending.limits.max_message,
            events,
        );
        read_loop(ws, &pending, origin, events, lane.as_ref());
        if let Some(lane) = &lane {
            lane.leave();
        }
    } else {
        control.abort();
    }
    control.release();
    pending.finish();
}

/// Runs the reader until the connection ends, then posts the closed event. With a `lane`, the
/// reader parks with the Lua thread between messages (see [`crate::lane`]).
pub fn read_loop(
    mut ws: WebSocket<Duplex>,
    pending: &Pending,
    origin: &WsOrigin,
    events: &EventSender,
    lane: Option<&Arc<Lane>>,
) {
    let id = pending.id;
    let send = |kind| {
        events.send_blocking(Event::Ws(Box::new(WsEvent {
            origin: origin.clone(),
            id,
            kind,
        })))
    };
    let mut close_reason: Option<(u16, String)> = None;
    // Parking is only for the wait after a message (or at the start), when tungstenite has
    // nothing to say: not after a Close, whose reply it writes on the next read.
    let mut may_park = true;
    loop {
        if let Some(lane) = lane.filter(|_| may_park && ws.get_ref().at_boundary()) {
            // A pong tungstenite owes goes out before the reader sleeps.
            if ws.flush().is_err() {
                break;
            }
            if let Some(Resumed::Read(bytes, _)) = lane.park(Instant::now()) {
                ws.get_mut().extend(&bytes);
            }
        }
        may_park = false;
        match ws.read() {
            Ok(Message::Text(text)) => {
                if !send(WsEventKind::Message(text.as_bytes().to_vec(), false)) {
                    break;
                }
                may_park = true;
            }
            Ok(Message::Binary(data)) => {
                if !send(WsEventKind::Message(data.to_vec(), true)) {
                    break;
                }
                may_park = true;
            }
            Ok(Message::Close(frame)) => {
                close_reason = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                // The next read writes tungstenite's close reply and reports the end.
            }
            Ok(_) => {} // ping (answered by tungstenite), pong, raw frame
            // Closed cleanly, or the peer left without a Close frame: no reason, no code.
            Err(tungstenite::Error::ConnectionClosed)
            | Err(tungstenite::Error::AlreadyClosed)
            | Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => break,
            Err(e) => {
                let code = match &e {
                    tungstenite::Error::Capacity(_) => Some(1009),
                    tungstenite::Error::Protocol(_) => Some(1002),
                    tungstenite::Error::Utf8(_) => Some(1007),
                    _ => None,
                };
                log::debug!("websocket client {id}: {e}");
                if let Some(code) = code {
                    let reason = if code == 1009 {
                        "Message too big"
                    } else {
                        "Protocol error"
                    };
                    let _ = pending.out.send(Out::Close {
                        code,
                        reason: reason.into(),
                    });
                    close_reason = Some((code, reason.into()));
                }
                break;
            }
        }
    }
    let locally_closed = pending.closed.swap(true, Ordering::SeqCst);
    let _ = pending.out.send(Out::Stop);
    if locally_closed {
        log::debug!("websocket client {id} closed by the script");
    }
    let (reason, code) = match close_reason {
        Some((code, reason)) => (Some(reason), Some(code)),
        None => (None, None),
    };
    send(WsEventKind::Closed { reason, code });
}
