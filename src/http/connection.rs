//! One HTTP/1.1 connection, served by its own thread from accept to close.
//!
//! The thread reads a request head and its whole body (within limits and deadlines), hands the
//! request to the Lua thread as an `http_request` event, waits for the script to close the
//! response, and writes it. Requests on one connection are handled one after another, so
//! pipelined requests are answered in order. The Lua thread never touches the socket.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::body::{read_body, BodyError, Framing};
use super::exchange::{Exchange, ExchangeGuard};
use super::head::{read_head, HeadError, HeadLimits, RequestHead};
use super::input::Input;
use super::listener::ListenerShared;
use super::response::{write_response, Response, WireOptions};
use crate::event::{Event, IncomingRequest};

/// Starts a thread serving `stream`, or answers `503` if the listener is at its connection limit.
pub fn spawn(stream: TcpStream, shared: Arc<ListenerShared>) {
    let stream = Arc::new(stream);
    let Some(worker) = shared
        .connections
        .enroll(stream.clone(), shared.config.max_connections)
    else {
        log::warn!(
            "port {}: {} connections open, refusing one with 503",
            shared.port,
            shared.config.max_connections
        );
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        reject(Input::shared(stream), 503, 1);
        return;
    };
    let builder = std::thread::Builder::new()
        .name("ccserve-conn".into())
        .stack_size(shared.config.thread_stack_size);
    if let Err(e) = builder.spawn(move || {
        let _worker = worker;
        serve(stream, &shared);
    }) {
        // The closure (the stream and the worker slot in it) is gone; the client sees the
        // connection close.
        log::warn!("cannot start a connection thread: {e}");
    }
}

fn serve(stream: Arc<TcpStream>, shared: &ListenerShared) {
    let config = &shared.config;
    crate::sched::batch_thread(config.batch_io_threads);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(config.write_timeout));
    let mut input = Input::shared(stream);
    let limits = HeadLimits {
        max_request_line: config.max_request_line,
        max_header_bytes: config.max_header_bytes,
        max_headers: config.max_headers,
        header_timeout: config.header_timeout,
    };
    loop {
        let idle_deadline = Instant::now() + config.keep_alive_timeout;
        let head = match read_head(&mut input, &limits, idle_deadline) {
            Ok(head) => head,
            Err(HeadError::Idle) | Err(HeadError::Vanished) => return,
            Err(HeadError::Reject(status)) => {
                log::debug!("port {}: rejecting request head with {status}", shared.port);
                reject(input, status, 1);
                return;
            }
        };
        match handle_request(&mut input, head, shared) {
            Next::KeepAlive => continue,
            Next::Close => {
                linger_close(input);
                return;
            }
            Next::Gone => return,
        }
    }
}

/// What to do with the connection after a request.
enum Next {
    KeepAlive,
    Close,
    Gone,
}

fn handle_request(input: &mut Input, head: RequestHead, shared: &ListenerShared) -> Next {
    let config = &shared.config;
    let minor = head.minor_version;
    let mut keep_alive = if minor == 0 {
        head.has_token("connection", "keep-alive")
    } else {
        !head.has_token("connection", "close")
    };
    // A protocol switch we do not perform: answer the request as plain HTTP, then close, so
    // whatever the client sends next is never misread as a request.
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
    if let Some(expect) = head.header("expect") {
        if !expect.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
            return answer(input, Response::plain(417), minor, false, false);
        }
        if let Framing::Length(n) = framing {
            if n > config.max_body as u64 {
                return answer(input, Response::plain(413), minor, false, false);
            }
        }
        if minor >= 1
            && framing != Framing::Empty
            && input
                .stream()
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .is_err()
        {
            return Next::Gone;
        }
    }
    let body_deadline = Instant::now() + config.body_timeout;
    let body = match read_body(input, framing, config.max_body, body_deadline) {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return answer(input, Response::plain(413), minor, false, false)
        }
        Err(BodyError::Timeout) => return answer(input, Response::plain(408), minor, false, false),
        Err(BodyError::Malformed) => {
            return answer(input, Response::plain(400), minor, false, false)
        }
        // Removing the listener shuts reading down under a request still arriving.
        Err(BodyError::Vanished) if shared.stopped.load(Ordering::SeqCst) => {
            return answer(input, Response::plain(503), minor, false, false)
        }
        Err(BodyError::Vanished) => return Next::Gone,
    };
    let head_only = head.method == "HEAD";

    // Hand the request to the script and wait for its response.
    let owed = shared.tracker.owe();
    let exchange = Exchange::new();
    let Some(id) = shared.register(exchange.clone()) else {
        return answer(input, Response::plain(503), minor, false, false);
    };
    let deadline = Instant::now() + config.response_timeout;
    let request = IncomingRequest {
        port: shared.port,
        method: head.method,
        target: head.target,
        headers: head.headers,
        body,
        guard: ExchangeGuard::new(exchange.clone()),
    };
    if let Err(Event::HttpRequest(mut request)) = shared.events.send_within(
        Event::HttpRequest(Box::new(request)),
        config.response_timeout,
    ) {
        // The script has ended or its queue stayed full: answer for it.
        request.guard.set_status_on_drop(503);
    }
    let response = exchange.wait(deadline);
    shared.unregister(id);
    keep_alive &=
        !response.wants_close() && response.status >= 200 && !shared.stopped.load(Ordering::SeqCst);
    let next = answer(input, response, minor, head_only, keep_alive);
    drop(owed);
    next
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
    let mut stream = input.stream();
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
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
