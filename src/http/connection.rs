//! One HTTP/1.1 connection, served by its own thread from accept to close.
//!
//! The thread reads a request head and, for an API that takes bodies whole, the whole body
//! (within limits and deadlines); it hands the request to the Lua thread as an `http_request`
//! event carrying an [`Exchange`], then serves the exchange until the response is complete: it
//! writes each part of the response as the script produces it (or the whole response the script
//! closed), and for an API that streams bodies, reads each piece of the body when the script asks
//! for it. Requests on one connection are handled one after another, so pipelined requests are
//! answered in order. The Lua thread never waits on the socket; it writes a small finished
//! response when this thread is asleep (see [`super::direct`]), and between requests, when this
//! thread has parked the connection with it (see [`crate::lane`]), it reads a small next request
//! itself ([`open_fast`]) so that this thread sleeps on; everything else comes back here.

use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::body::{read_body, BodyError, BodyReader, Framing};
use super::direct::{Direct, Waker};
use super::exchange::{BodyPoll, Exchange, ExchangeGuard, Part, Upgrade, Upgraded, Work};
use super::head::{parse_head, read_head, HeadError, HeadLimits, RequestHead};
use super::input::Input;
use super::listener::{BodyMode, ListenerShared, OwedResponse};
use super::response::{write_response, PartError, PartWriter, Response, WireOptions};
use crate::event::{Event, IncomingRequest};
use crate::lane::{Lane, Resumed};
use crate::socket::Socket;

/// Largest piece of a streamed request body read at once, whatever the script asks for.
const MAX_BODY_PIECE: usize = 64 * 1024;

/// Most bytes of an unread streamed request body discarded after the response so that the
/// connection can carry another request; with more left, the connection is closed instead.
const MAX_BODY_DISCARD: u64 = 1024 * 1024;

/// Starts a thread serving `stream`, or answers `503` if the listener is at its connection limit.
pub fn spawn(stream: TcpStream, shared: Arc<ListenerShared>) {
    start(Socket::plain(stream), shared, true)
}

/// Serves a connection of a TLS listener on the calling thread (the one that ran its handshake,
/// or, on a port serving both, looked at its first byte), or answers `503` if the listener is at
/// its connection limit.
pub fn serve_here(socket: Socket, shared: Arc<ListenerShared>) {
    start(socket, shared, false)
}

/// Serves `socket` on a new thread (`spawn`) or the calling one.
fn start(socket: Socket, shared: Arc<ListenerShared>, spawn: bool) {
    let stream = Arc::new(socket);
    let Some(worker) = shared
        .connections
        .enroll(stream.tcp_shared().clone(), shared.config.max_connections)
    else {
        log::warn!(
            "port {}: {} connections open, refusing one with 503",
            shared.port,
            shared.config.max_connections
        );
        let _ = stream.tcp().set_write_timeout(Some(Duration::from_secs(1)));
        reject(Input::shared(stream), 503, 1);
        return;
    };
    let stack = shared.config.thread_stack_size;
    let run = move || {
        let _worker = worker;
        let connection = next_connection_id();
        serve(stream, connection, &shared);
        if shared.options.report_closed {
            // The runtime may be gone; then nobody needs to know.
            shared
                .events
                .send_blocking(Event::ConnectionClosed(connection));
        }
    };
    if !spawn {
        return run();
    }
    let builder = std::thread::Builder::new()
        .name("ccserve-conn".into())
        .stack_size(stack);
    if let Err(e) = builder.spawn(run) {
        // The closure (the stream and the worker slot in it) is gone; the client sees the
        // connection close.
        log::warn!("cannot start a connection thread: {e}");
    }
}

fn serve(stream: Arc<Socket>, connection: u64, shared: &Arc<ListenerShared>) {
    let config = &shared.config;
    crate::sched::batch_thread(config.batch_io_threads);
    let _ = stream.tcp().set_nodelay(true);
    let _ = stream.tcp().set_write_timeout(Some(config.write_timeout));
    let peers = Peers {
        peer: stream.tcp().peer_addr().ok(),
        local: stream.tcp().local_addr().ok(),
        tls: stream.is_tls(),
        connection,
        // With a waker, the Lua thread writes small responses itself (`super::direct`).
        waker: Waker::new().map(Arc::new),
    };
    // With a lane, the connection parks with the Lua thread between requests (`crate::lane`).
    let lane = Lane::http(stream.clone(), &peers, shared);
    let _leave = LeaveOnDrop(lane.as_ref());
    let mut input = Input::shared(stream);
    let limits = head_limits(config);
    let mut idle_from = Instant::now();
    let mut first = true;
    loop {
        let next = 'request: {
            // Between requests, with nothing read ahead: park, and let the Lua thread read the
            // next request if it can.
            if let Some(lane) = lane.as_ref().filter(|_| !first && !input.has_input()) {
                match lane.park(idle_from) {
                    Some(Resumed::Serve(opened)) => {
                        break 'request opened.serve(&mut input, None, shared)
                    }
                    Some(Resumed::Read(bytes, since)) => {
                        input.extend(&bytes);
                        idle_from = since;
                    }
                    None => {}
                }
            }
            first = false;
            let idle_deadline = idle_from + config.keep_alive_timeout;
            let head = match read_head(&mut input, &limits, idle_deadline) {
                Ok(head) => head,
                Err(HeadError::Idle) => {
                    // Idle too long, or the client closed: over TLS, `close_notify` first.
                    let _ = input.stream().shutdown_write();
                    return;
                }
                Err(HeadError::Vanished) => return,
                Err(HeadError::Reject(status)) => {
                    log::debug!("port {}: rejecting request head with {status}", shared.port);
                    reject(input, status, 1);
                    return;
                }
            };
            handle_request(&mut input, head, &peers, shared)
        };
        match next {
            Next::KeepAlive => idle_from = Instant::now(),
            Next::KeepAliveSince(at) => idle_from = at,
            Next::Close => {
                linger_close(input);
                return;
            }
            Next::Gone => return,
            Next::Abort => {
                let _ = input.stream().tcp().shutdown(Shutdown::Both);
                return;
            }
            Next::Upgrade(take_over) => {
                // The socket leaves the Lua thread's epoll set before another protocol has it.
                if let Some(lane) = &lane {
                    lane.leave();
                }
                let (stream, leftover) = input.into_parts();
                take_over(Upgraded { stream, leftover });
                return;
            }
        }
    }
}

/// Takes a connection's socket out of the Lua thread's epoll set when its thread ends.
struct LeaveOnDrop<'a>(Option<&'a Arc<Lane>>);

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(lane) = self.0 {
            lane.leave();
        }
    }
}

/// The head limits from the configuration.
fn head_limits(config: &crate::Config) -> HeadLimits {
    HeadLimits {
        max_request_line: config.max_request_line,
        max_header_bytes: config.max_header_bytes,
        max_headers: config.max_headers,
        header_timeout: config.header_timeout,
    }
}

/// Who is at each end of a connection, and which connection it is.
#[derive(Debug, Clone)]
pub(crate) struct Peers {
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    /// Whether the connection is TLS.
    tls: bool,
    /// The connection's id.
    pub(crate) connection: u64,
    /// The connection thread's waker, when direct writes are possible.
    pub(crate) waker: Option<Arc<Waker>>,
}

/// A connection id, unique in the process.
fn next_connection_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What to do with the connection after a request.
enum Next {
    KeepAlive,
    /// Keep alive, idle since then (the Lua thread wrote the response).
    KeepAliveSince(Instant),
    Close,
    /// The client has gone: just end.
    Gone,
    /// End at once, without finishing the response (the client sees it cut off).
    Abort,
    /// Hand the connection over.
    Upgrade(Upgrade),
}

/// A request body the script reads as it wants.
struct StreamedBody {
    reader: BodyReader,
    /// The client sent `Expect: 100-continue` and no `100` has gone out yet.
    expects_continue: bool,
}

impl StreamedBody {
    /// Whether a response sent now can leave the connection open for another request: not while
    /// the client still waits for `100 Continue` before sending a body nobody read (the
    /// connection must close; see [`finish_body`]).
    fn may_keep_alive(&self) -> bool {
        self.reader.is_done() || !self.expects_continue
    }
}

fn handle_request(
    input: &mut Input,
    head: RequestHead,
    peers: &Peers,
    shared: &ListenerShared,
) -> Next {
    let config = &shared.config;
    let minor = head.minor_version;
    let mut keep_alive = keep_alive_of(&head);
    // A protocol switch: the script may perform it (handing the connection over); if it answers
    // as plain HTTP instead, the connection closes after, so whatever the client sends next is
    // never misread as a request.
    if head.header("upgrade").is_some() {
        keep_alive = false;
    }
    let framing = match framing_of(&head) {
        Ok((framing, ambiguous)) => {
            keep_alive &= !ambiguous;
            framing
        }
        Err(status) => return answer(input, Response::plain(status), minor, false, false),
    };
    if shared.stopped.load(Ordering::SeqCst) {
        return answer(input, Response::plain(503), minor, false, false);
    }
    let streamed = shared.options.body_mode == BodyMode::Streamed;
    let max_body = if streamed {
        config.max_stream_body
    } else {
        config.max_body as u64
    };
    let mut expects_continue = false;
    if let Some(expect) = head.header("expect") {
        if !expect.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
            return answer(input, Response::plain(417), minor, false, false);
        }
        if let Framing::Length(n) = framing {
            if n > max_body {
                return answer(input, Response::plain(413), minor, false, false);
            }
        }
        expects_continue = minor >= 1 && framing != Framing::Empty;
    }
    let (body, streamed_body) = if streamed {
        // Read as the script asks; `100 Continue` goes out when it first does.
        let reader = BodyReader::new(framing, max_body);
        let body = StreamedBody {
            reader,
            expects_continue,
        };
        (Vec::new(), Some(body))
    } else {
        if expects_continue && input.stream().write_all(CONTINUE).is_err() {
            return Next::Gone;
        }
        let body_deadline = Instant::now() + config.body_timeout;
        match read_body(input, framing, config.max_body, body_deadline) {
            Ok(body) => (body, None),
            Err(e) => return reject_body(input, e, minor, shared),
        }
    };
    let opts = WireOptions {
        minor_version: minor,
        head_only: head.method == "HEAD",
        keep_alive,
    };
    // A small response may be written by the Lua thread itself, once the request is read whole.
    let direct = streamed_body
        .as_ref()
        .is_none_or(|b| b.reader.is_done())
        .then(|| input.has_input());
    let Some((mut opened, request)) = open(
        head,
        body,
        input.shared_stream(),
        peers,
        shared,
        opts,
        direct,
    ) else {
        return answer(input, Response::plain(503), minor, false, false);
    };
    if let Err(Event::HttpRequest(mut request)) = shared.events.send_within(
        Event::HttpRequest(Box::new(request)),
        config.response_timeout,
    ) {
        // The script has ended or its queue stayed full: answer for it.
        request.guard.set_status_on_drop(503);
    }
    // The response timeout runs from when the script could have the request.
    opened.started = Instant::now();
    opened.serve(input, streamed_body, shared)
}

/// An exchange handed to the script, with what serving it takes.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The exchange.
    pub(crate) exchange: Arc<Exchange>,
    /// Its registration with the listener.
    id: u64,
    owed: OwedResponse,
    opts: WireOptions,
    /// When the script could first have it (the response timeout runs from there).
    pub(crate) started: Instant,
}

/// Opens the exchange for a request read whole (or whose body the script streams) and builds
/// the request the script receives. `direct`: whether the Lua side may write a whole response
/// itself, and if so whether a next request is already read. `None` once the listener is
/// stopped.
fn open(
    head: RequestHead,
    body: Vec<u8>,
    stream: &Arc<Socket>,
    peers: &Peers,
    shared: &ListenerShared,
    opts: WireOptions,
    direct: Option<bool>,
) -> Option<(Opened, IncomingRequest)> {
    let config = &shared.config;
    let streamed = shared.options.body_mode == BodyMode::Streamed;
    let owed = shared.tracker.owe();
    let exchange = Exchange::new(config.stream_buffer, shared.events.clone(), !streamed);
    let id = shared.register(exchange.clone())?;
    if let (Some(waker), Some(waiting)) = (&peers.waker, direct) {
        exchange.enable_direct(
            Direct {
                stream: stream.clone(),
                waker: waker.clone(),
                opts,
                stopped: shared.stopped.clone(),
                keep_alive_timeout: config.keep_alive_timeout,
            },
            waiting,
        );
    }
    let request = IncomingRequest {
        event: shared.options.event,
        port: shared.port,
        listener: shared.id,
        peer: peers.peer,
        local: peers.local,
        connection: peers.connection,
        tls: peers.tls,
        method: head.method,
        target: head.target,
        headers: head.headers,
        minor_version: opts.minor_version,
        body,
        guard: ExchangeGuard::new(exchange.clone()),
    };
    let opened = Opened {
        exchange,
        id,
        owed,
        opts,
        started: Instant::now(),
    };
    Some((opened, request))
}

/// On the Lua thread, for a parked connection (see [`crate::lane`]): turns `bytes`, just read
/// off the socket, into a request event if they are exactly one small request without a body
/// that needs nothing from the connection thread before the script sees it (no `Expect`, no
/// protocol switch, nothing pipelined behind it, the listener running). The exchange is opened
/// for direct writes, with the connection thread parked on its waker. `None`: the connection
/// thread serves these bytes as usual.
pub(crate) fn open_fast(
    bytes: &[u8],
    stream: &Arc<Socket>,
    peers: &Peers,
    shared: &ListenerShared,
) -> Option<(Opened, Event)> {
    peers.waker.as_ref()?;
    // The empty lines RFC 9112 allows before a request.
    let skip = bytes
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let bytes = &bytes[skip..];
    let Ok(Some((head, len))) = parse_head(bytes, &head_limits(&shared.config)) else {
        return None;
    };
    if len != bytes.len()
        || head.header("upgrade").is_some()
        || head.header("expect").is_some()
        || !matches!(framing_of(&head), Ok((Framing::Empty, false)))
        || shared.stopped.load(Ordering::SeqCst)
    {
        return None;
    }
    let opts = WireOptions {
        minor_version: head.minor_version,
        head_only: head.method == "HEAD",
        keep_alive: keep_alive_of(&head),
    };
    let (opened, request) = open(head, Vec::new(), stream, peers, shared, opts, Some(false))?;
    opened.exchange.conn_parked();
    Some((opened, Event::HttpRequest(Box::new(request))))
}

impl Opened {
    /// The Lua side wrote the whole response (see [`crate::lane`]): the exchange is over.
    pub(crate) fn finish_sent(self, shared: &ListenerShared) {
        self.exchange.set_gone();
        shared.unregister(self.id);
    }

    /// Serves the exchange on the connection thread until its response is complete, then
    /// closes it; says what becomes of the connection.
    fn serve(
        self,
        input: &mut Input,
        mut streamed_body: Option<StreamedBody>,
        shared: &ListenerShared,
    ) -> Next {
        let deadline = self.started + shared.config.response_timeout;
        let next = serve_exchange(
            input,
            &self.exchange,
            self.opts,
            streamed_body.as_mut(),
            shared,
            deadline,
        );
        // Nothing more of this exchange is served: later writes and body reads from the script
        // fail (and one waiting is told).
        self.exchange.set_gone();
        shared.unregister(self.id);
        drop(self.owed);
        match next {
            Next::KeepAlive => match streamed_body {
                Some(body) if !body.reader.is_done() => finish_body(input, body, shared),
                _ => Next::KeepAlive,
            },
            other => other,
        }
    }
}

/// Whether the client lets the connection carry another request after this one.
fn keep_alive_of(head: &RequestHead) -> bool {
    if head.minor_version == 0 {
        head.has_token("connection", "keep-alive")
    } else {
        !head.has_token("connection", "close")
    }
}

/// `100 Continue`, as written before a body is read.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Serves an exchange until its response is complete: writes what the script produces, reads
/// the body pieces it asks for.
fn serve_exchange(
    input: &mut Input,
    exchange: &Exchange,
    opts: WireOptions,
    mut body: Option<&mut StreamedBody>,
    shared: &ListenerShared,
    mut deadline: Instant,
) -> Next {
    let config = &shared.config;
    let mut writer = PartWriter::new(opts);
    loop {
        let parts = match exchange.next_work(deadline) {
            Work::Complete(response) => {
                let keep_alive = opts.keep_alive
                    && !response.wants_close()
                    && response.status >= 200
                    && !shared.stopped.load(Ordering::SeqCst)
                    && body.as_deref().is_none_or(StreamedBody::may_keep_alive);
                return answer(
                    input,
                    response,
                    opts.minor_version,
                    opts.head_only,
                    keep_alive,
                );
            }
            Work::Abort => return Next::Abort,
            Work::Sent(sent) => {
                // Over TLS, records of the response may still wait in the session: writing the
                // rest (even none) sends them first.
                if !sent.rest.is_empty() || sent.flush {
                    if let Err(e) = input.stream().write_all(&sent.rest) {
                        log::debug!("writing a response failed: {e}");
                        return Next::Gone;
                    }
                }
                return match sent.keep_alive && !shared.stopped.load(Ordering::SeqCst) {
                    true if sent.rest.is_empty() => Next::KeepAliveSince(sent.at),
                    true => Next::KeepAlive,
                    false => Next::Close,
                };
            }
            Work::ReadBody(max) => {
                let found = match body.as_deref_mut() {
                    Some(body) => {
                        // Once a final response is on its way, the client no longer waits for
                        // `100 Continue`: it must not land in the middle of the response.
                        if writer.head_written() {
                            body.expects_continue = false;
                        }
                        read_piece(input, body, max, config.body_timeout)
                    }
                    // The whole body was handed over with the request.
                    None => BodyPoll::End,
                };
                if matches!(found, BodyPoll::Failed(BodyError::Vanished)) {
                    exchange.set_gone();
                    exchange.deliver_body(found);
                    return Next::Gone;
                }
                exchange.deliver_body(found);
                continue;
            }
            Work::Parts(parts) => parts,
        };
        let mut written = 0;
        let mut upgrade = None;
        let mut result = Ok(());
        for part in parts {
            result = match part {
                Part::Continue => {
                    if let Some(body) = body.as_deref_mut() {
                        if std::mem::take(&mut body.expects_continue) {
                            writer.continue_100();
                        }
                    }
                    Ok(())
                }
                Part::Head(head) => {
                    let keep_alive = !shared.stopped.load(Ordering::SeqCst)
                        && body.as_deref().is_none_or(StreamedBody::may_keep_alive);
                    writer.head(&head, keep_alive);
                    Ok(())
                }
                Part::Data(data) => {
                    written += data.len();
                    writer.data(&mut input.stream(), &data)
                }
                Part::End => writer.end(),
                Part::Upgrade(take_over) => {
                    upgrade = Some(take_over);
                    Ok(())
                }
            };
            if result.is_err() || upgrade.is_some() {
                break;
            }
        }
        let result = result.and_then(|()| writer.flush(&mut input.stream()).map_err(PartError::Io));
        exchange.written(written);
        match result {
            Ok(()) => {}
            Err(PartError::Io(e)) => {
                log::debug!("writing a response failed: {e}");
                exchange.set_gone();
                return Next::Gone;
            }
            Err(PartError::Framing(e)) => {
                log::warn!(
                    "port {}: the script's response broke its Content-Length ({e:?}); closing \
                     the connection",
                    shared.port
                );
                // What was produced within the framing still goes out.
                let _ = writer.flush(&mut input.stream());
                exchange.set_gone();
                return Next::Abort;
            }
        }
        if let Some(take_over) = upgrade {
            exchange.set_gone();
            return Next::Upgrade(take_over);
        }
        if writer.ended() {
            return if writer.keep_alive() && !shared.stopped.load(Ordering::SeqCst) {
                Next::KeepAlive
            } else {
                Next::Close
            };
        }
        deadline = Instant::now() + config.response_timeout;
    }
}

/// Reads the next piece of a streamed body for the script, answering `Expect: 100-continue`
/// first if nothing has answered it yet. Each piece has the body timeout to arrive.
fn read_piece(
    input: &mut Input,
    body: &mut StreamedBody,
    max: usize,
    timeout: Duration,
) -> BodyPoll {
    if std::mem::take(&mut body.expects_continue) && input.stream().write_all(CONTINUE).is_err() {
        return BodyPoll::Failed(BodyError::Vanished);
    }
    let mut piece = Vec::new();
    let deadline = Instant::now() + timeout;
    match body
        .reader
        .read_into(input, &mut piece, max.min(MAX_BODY_PIECE), deadline)
    {
        Ok(0) => BodyPoll::End,
        Ok(_) => BodyPoll::Data(piece),
        Err(e) => BodyPoll::Failed(e),
    }
}

/// After a response, the part of a streamed body the script did not read: discarded if small
/// (the connection goes on), else the connection closes. A client still waiting for
/// `100 Continue` never sends it, so the connection closes.
fn finish_body(input: &mut Input, mut body: StreamedBody, shared: &ListenerShared) -> Next {
    if body.expects_continue {
        return Next::Close;
    }
    let deadline = Instant::now() + Duration::from_secs(2).min(shared.config.body_timeout);
    let mut scratch = Vec::new();
    let mut discarded = 0u64;
    while discarded <= MAX_BODY_DISCARD {
        scratch.clear();
        match body
            .reader
            .read_into(input, &mut scratch, MAX_BODY_PIECE, deadline)
        {
            Ok(0) => return Next::KeepAlive,
            Ok(n) => discarded += n as u64,
            Err(_) => return Next::Close,
        }
    }
    Next::Close
}

/// Answers a request whose whole body could not be read.
fn reject_body(input: &mut Input, e: BodyError, minor: u8, shared: &ListenerShared) -> Next {
    let status = match e {
        BodyError::TooLarge => 413,
        BodyError::Timeout => 408,
        BodyError::Malformed => 400,
        // Removing the listener shuts reading down under a request still arriving.
        BodyError::Vanished if shared.stopped.load(Ordering::SeqCst) => 503,
        BodyError::Vanished => return Next::Gone,
    };
    answer(input, Response::plain(status), minor, false, false)
}

/// Decides how the request body is framed. The flag says the framing was ambiguous (both
/// `Transfer-Encoding` and `Content-Length`), after which the connection must not be reused.
fn framing_of(head: &RequestHead) -> Result<(Framing, bool), u16> {
    let te: Vec<&[u8]> = head.headers_named("transfer-encoding").collect();
    let cl: Vec<&[u8]> = head.headers_named("content-length").collect();
    if !te.is_empty() {
        let last = te
            .iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|t| t.trim_ascii())
            .rfind(|t| !t.is_empty());
        return match last {
            Some(t) if t.eq_ignore_ascii_case(b"chunked") => Ok((Framing::Chunked, !cl.is_empty())),
            _ => Err(501),
        };
    }
    let mut length = None;
    for value in cl {
        for part in value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(400);
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(400u16)?;
            if length.is_some_and(|l| l != n) {
                return Err(400);
            }
            length = Some(n);
        }
    }
    Ok(match length {
        None | Some(0) => (Framing::Empty, false),
        Some(n) => (Framing::Length(n), false),
    })
}

/// Writes a response; says whether the connection goes on.
fn answer(
    input: &mut Input,
    response: Response,
    minor: u8,
    head_only: bool,
    keep_alive: bool,
) -> Next {
    let opts = WireOptions {
        minor_version: minor,
        head_only,
        keep_alive,
    };
    match write_response(&mut input.stream(), &response, opts) {
        Ok(()) if keep_alive => Next::KeepAlive,
        Ok(()) => Next::Close,
        Err(e) => {
            log::debug!("writing response failed: {e}");
            Next::Gone
        }
    }
}

/// Answers an unacceptable request with `status` and closes.
fn reject(mut input: Input, status: u16, minor: u8) {
    if let Next::Close = answer(&mut input, Response::plain(status), minor, false, false) {
        linger_close(input);
    }
}

/// Closes after a response without losing it: stop sending, then read and discard what the client
/// still sends for a moment, so the kernel does not reset the connection (and the response with
/// it) because unread request bytes were left behind.
fn linger_close(input: Input) {
    // Over TLS, after `close_notify`; what follows is read raw and thrown away.
    if input.stream().shutdown_write().is_err() {
        return;
    }
    let mut stream = input.stream().tcp();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut discarded = 0usize;
    let mut scratch = [0u8; 4096];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    while discarded < 1024 * 1024 && Instant::now() < deadline {
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => discarded += n,
        }
    }
}
