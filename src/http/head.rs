//! Reading and parsing a request head (request line plus header fields) with limits.
//!
//! Parsing is `httparse`'s; this module adds what it leaves to the caller: deadlines, the
//! request-line and head-size limits, and the mapping of each failure to a status code.

use std::mem::MaybeUninit;
use std::time::Instant;

use super::input::{Input, ReadError};

/// Limits and deadlines for one request head.
pub struct HeadLimits {
    /// Longest request line (`414` beyond).
    pub max_request_line: usize,
    /// Largest head (`431` beyond).
    pub max_header_bytes: usize,
    /// Most header fields (`431` beyond).
    pub max_headers: usize,
    /// Time allowed from the first byte of the head to its end (`408` after).
    pub header_timeout: std::time::Duration,
}

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// The method as sent.
    pub method: String,
    /// The raw request target: path plus query, not decoded.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order, names as the client spelled them.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RequestHead {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// All values of headers named `name` (case-insensitive).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether a comma-separated header (such as `Connection`) lists `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers_named(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }
}

/// Why no head was read.
#[derive(Debug)]
pub enum HeadError {
    /// The connection was idle until the keep-alive deadline, or the peer closed it before
    /// sending anything: close quietly.
    Idle,
    /// The peer went away in the middle of a head: nothing to answer.
    Vanished,
    /// The head is unacceptable: answer with this status and close.
    Reject(u16),
}

/// Reads one request head. `idle_deadline` bounds the wait for its first byte; after that the
/// whole head must arrive within `limits.header_timeout`.
pub fn read_head(
    input: &mut Input,
    limits: &HeadLimits,
    idle_deadline: Instant,
) -> Result<RequestHead, HeadError> {
    // Wait for the first byte (skipping the empty lines RFC 9112 allows before a request).
    loop {
        let skip = input
            .buffered()
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        input.consume(skip);
        if !input.buffered().is_empty() {
            break;
        }
        match input.fill(idle_deadline) {
            Ok(_) => {}
            Err(ReadError::Timeout) | Err(ReadError::Closed) => return Err(HeadError::Idle),
            Err(ReadError::Io(e)) => {
                log::debug!("read error while idle: {e}");
                return Err(HeadError::Idle);
            }
        }
    }
    let deadline = Instant::now() + limits.header_timeout;
    loop {
        match parse(input.buffered(), limits)? {
            Some((head, len)) => {
                input.consume(len);
                return Ok(head);
            }
            None => {
                let buffered = input.buffered();
                if buffered.len() > limits.max_request_line && !buffered.contains(&b'\n') {
                    return Err(HeadError::Reject(414));
                }
                if buffered.len() > limits.max_header_bytes {
                    return Err(HeadError::Reject(431));
                }
            }
        }
        match input.fill(deadline) {
            Ok(_) => {}
            Err(ReadError::Timeout) => return Err(HeadError::Reject(408)),
            Err(ReadError::Closed) => return Err(HeadError::Vanished),
            Err(ReadError::Io(e)) => {
                log::debug!("read error in request head: {e}");
                return Err(HeadError::Vanished);
            }
        }
    }
}

/// Header slots on the stack: enough for the default `max_headers`, so parsing a head allocates
/// nothing (a larger limit takes them from the heap).
const STACK_HEADERS: usize = 100;

/// Parses a complete head from `buf` (which must not start with empty lines), or returns
/// `None` if more bytes are needed; with the head, how many bytes it took.
pub(super) fn parse_head(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    parse(buf, limits)
}

/// Parses a complete head from `buf`, or returns `None` if more bytes are needed.
fn parse(buf: &[u8], limits: &HeadLimits) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => {
            let line_len = buf.iter().position(|&b| b == b'\n').unwrap_or(len);
            if line_len > limits.max_request_line {
                return Err(HeadError::Reject(414));
            }
            if len > limits.max_header_bytes {
                return Err(HeadError::Reject(431));
            }
            let head = RequestHead {
                method: req.method.unwrap_or_default().to_string(),
                target: req.path.unwrap_or_default().to_string(),
                minor_version: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect(),
            };
            Ok(Some((head, len)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::Reject(431)),
        Err(e) => {
            log::debug!("malformed request head: {e}");
            Err(HeadError::Reject(400))
        }
    }
}
