//! Writing a response: status line, headers, framing and body, whole or as it is produced.
//!
//! The script chooses status, reason and headers; framing is always ours. Whatever
//! `Content-Length`, `Transfer-Encoding` or `Connection` the script sets, the body goes out with
//! a `Content-Length` when its length is known before its first byte, else chunked (HTTP/1.1) or
//! delimited by closing the connection (HTTP/1.0), so a keep-alive stream can never be
//! desynchronised. `HEAD` responses, `1xx`, `204` and `304` carry no body.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// A complete response as the script built it.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code (100..=999).
    pub status: u16,
    /// Reason phrase, if the script gave one; otherwise the standard phrase for `status`.
    pub reason: Option<Vec<u8>>,
    /// Header fields in the order first set, names as first spelled.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with a status.
    pub fn status(status: u16) -> Response {
        Response {
            status,
            reason: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A short plain-text response used for errors the server answers by itself.
    pub fn plain(status: u16) -> Response {
        let mut r = Response::status(status);
        r.headers
            .push(("Content-Type".into(), b"text/plain; charset=utf-8".to_vec()));
        r.body = format!("{} {}\n", status, reason_phrase(status)).into_bytes();
        r
    }

    /// Whether the script asked to close the connection (`Connection: close`).
    pub fn wants_close(&self) -> bool {
        wants_close(&self.headers)
    }
}

/// Whether `headers` ask to close the connection (`Connection: close`).
pub fn wants_close(headers: &[(String, Vec<u8>)]) -> bool {
    headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("connection")
            && v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// Whether `name` is a valid header field name (an RFC 9110 token).
pub fn valid_header_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` can be sent as a header value or reason phrase (no CR, LF or NUL).
pub fn valid_header_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0)
}

/// The head of a response whose body follows in parts.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Status code (100..=999).
    pub status: u16,
    /// Reason phrase, if given; otherwise the standard phrase for `status`.
    pub reason: Option<Vec<u8>>,
    /// Header fields in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body's length, when the API fixed it before the first byte (`Content-Length`); the
    /// parts must then add up to exactly this. `None`: chunked, or until close on HTTP/1.0.
    pub length: Option<u64>,
}

/// What the request said that shapes the response on the wire.
#[derive(Debug, Clone, Copy)]
pub struct WireOptions {
    /// 0 for an HTTP/1.0 request, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// `HEAD` request: headers only.
    pub head_only: bool,
    /// Whether the connection may stay open after this response.
    pub keep_alive: bool,
}

/// How a response's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireBody {
    /// No body (`HEAD`, `1xx`, `204`, `304`): data parts are dropped.
    None,
    /// `Content-Length`: this many bytes are still to come.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (HTTP/1.0 without a known length).
    UntilClose,
}

/// Bodies up to this size are copied behind the head and sent in one write.
const COALESCE: usize = 16 * 1024;

/// Writes the complete response `resp` to `out`.
pub fn write_response(out: &mut impl Write, resp: &Response, opts: WireOptions) -> io::Result<()> {
    if resp.body.len() <= COALESCE {
        out.write_all(&encode_response(resp, opts))?;
    } else {
        let mut head = Vec::with_capacity(256);
        let send_body = encode_head_of(&mut head, resp, opts);
        out.write_all(&head)?;
        if send_body {
            out.write_all(&resp.body)?;
        }
    }
    out.flush()
}

/// The complete response `resp` in one buffer, head and body, as it goes on the wire.
pub fn encode_response(resp: &Response, opts: WireOptions) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256 + resp.body.len());
    if encode_head_of(&mut buf, resp, opts) {
        buf.extend_from_slice(&resp.body);
    }
    buf
}

/// Appends the head of the complete response `resp`; says whether its body goes out too.
fn encode_head_of(buf: &mut Vec<u8>, resp: &Response, opts: WireOptions) -> bool {
    encode_head(
        buf,
        resp.status,
        resp.reason.as_deref(),
        &resp.headers,
        Some(resp.body.len() as u64),
        opts,
        false,
    );
    has_body(resp.status, opts.head_only)
}

/// Whether a response with `status` to a request (HEAD or not) carries a body.
fn has_body(status: u16, head_only: bool) -> bool {
    !(head_only || (100..200).contains(&status) || status == 204 || status == 304)
}

/// Appends the status line and header fields, with our framing headers, and decides how the body
/// is delimited. A connection that will close says so in `Connection`. A `switching` response
/// (`101` handing the connection over) keeps the API's `Connection` header and gets none of ours.
fn encode_head(
    head: &mut Vec<u8>,
    status: u16,
    reason: Option<&[u8]>,
    headers: &[(String, Vec<u8>)],
    length: Option<u64>,
    opts: WireOptions,
    switching: bool,
) -> (WireBody, bool) {
    let no_length_status = (100..200).contains(&status) || status == 204;
    let mut keep_alive = opts.keep_alive;
    let wire = if !has_body(status, opts.head_only) {
        WireBody::None
    } else {
        match length {
            Some(n) => WireBody::Length(n),
            None if opts.minor_version >= 1 => WireBody::Chunked,
            None => {
                keep_alive = false;
                WireBody::UntilClose
            }
        }
    };
    // Formatted by hand: `write!` costs more than everything else in a small response head.
    head.extend_from_slice(b"HTTP/1.");
    push_decimal(head, u64::from(opts.minor_version));
    head.push(b' ');
    push_decimal(head, u64::from(status));
    head.push(b' ');
    match reason {
        Some(r) => head.extend_from_slice(r),
        None => head.extend_from_slice(reason_phrase(status).as_bytes()),
    }
    head.extend_from_slice(b"\r\n");
    let mut has_date = false;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("connection") && !switching)
        {
            continue;
        }
        has_date |= name.eq_ignore_ascii_case("date");
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    if !has_date {
        head.extend_from_slice(b"Date: ");
        head.extend_from_slice(&http_date(SystemTime::now()));
        head.extend_from_slice(b"\r\n");
    }
    if !switching {
        head.extend_from_slice(if keep_alive {
            b"Connection: keep-alive\r\n"
        } else {
            b"Connection: close\r\n"
        });
        match (length, wire) {
            (_, WireBody::Chunked) => head.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            (Some(n), _) if !no_length_status => {
                head.extend_from_slice(b"Content-Length: ");
                push_decimal(head, n);
                head.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
    }
    head.extend_from_slice(b"\r\n");
    (wire, keep_alive)
}

/// The script's response did not match the framing it chose: more or fewer bytes than its
/// `Content-Length`. The connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// More data than the declared length.
    TooLong,
    /// The response ended before the declared length.
    TooShort,
}

/// Why writing a response in parts failed.
#[derive(Debug)]
pub enum PartError {
    /// The socket failed (the client went away, or stopped reading for the write timeout).
    Io(io::Error),
    /// The parts broke the response's framing.
    Framing(FramingError),
}

impl From<io::Error> for PartError {
    fn from(e: io::Error) -> Self {
        PartError::Io(e)
    }
}

/// Writes a response piece by piece as the API produces it: an optional interim `100 Continue`,
/// the head, data, the end. Small pieces given together are coalesced into one write.
#[derive(Debug)]
pub struct PartWriter {
    opts: WireOptions,
    /// Set once the head is written.
    wire: Option<WireBody>,
    keep_alive: bool,
    ended: bool,
    buf: Vec<u8>,
}

impl PartWriter {
    /// A writer for the response to a request described by `opts`.
    pub fn new(opts: WireOptions) -> PartWriter {
        PartWriter {
            opts,
            wire: None,
            keep_alive: opts.keep_alive,
            ended: false,
            buf: Vec::new(),
        }
    }

    /// Whether the head has been queued or written (an interim `100` is not a head).
    pub fn head_written(&self) -> bool {
        self.wire.is_some()
    }

    /// Whether the response is complete.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether the connection may carry another request after this response (known once the
    /// head is written: a close-delimited body rules it out).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Queues `100 Continue` (HTTP/1.1 only; nothing once the head is written).
    pub fn continue_100(&mut self) {
        if self.wire.is_none() && self.opts.minor_version >= 1 {
            self.buf.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
    }

    /// Queues the head. `keep_alive` is false when the connection must close after the response.
    pub fn head(&mut self, head: &ResponseHead, keep_alive: bool) {
        debug_assert!(self.wire.is_none(), "a response has one head");
        let opts = WireOptions {
            keep_alive: self.opts.keep_alive && keep_alive && !wants_close(&head.headers),
            ..self.opts
        };
        // One allocation for a small head (growing from empty took five).
        self.buf.reserve(256);
        let (wire, keep_alive) = encode_head(
            &mut self.buf,
            head.status,
            head.reason.as_deref(),
            &head.headers,
            head.length,
            opts,
            head.status == 101,
        );
        self.wire = Some(wire);
        self.keep_alive = keep_alive;
    }

    /// Writes `data` (with what is queued before it) as framing requires.
    pub fn data(&mut self, out: &mut impl Write, data: &[u8]) -> Result<(), PartError> {
        if data.is_empty() {
            return Ok(());
        }
        match self.wire {
            None | Some(WireBody::None) => Ok(()),
            Some(WireBody::Length(left)) => {
                if data.len() as u64 > left {
                    // What fits goes out; the rest breaks the framing.
                    self.wire = Some(WireBody::Length(0));
                    self.raw(out, &data[..left as usize])?;
                    return Err(PartError::Framing(FramingError::TooLong));
                }
                self.wire = Some(WireBody::Length(left - data.len() as u64));
                self.raw(out, data)
            }
            Some(WireBody::Chunked) => {
                push_hex(&mut self.buf, data.len() as u64);
                self.buf.extend_from_slice(b"\r\n");
                self.raw(out, data)?;
                self.buf.extend_from_slice(b"\r\n");
                Ok(())
            }
            Some(WireBody::UntilClose) => self.raw(out, data),
        }
    }

    /// Queues the end of the body.
    pub fn end(&mut self) -> Result<(), PartError> {
        match self.wire {
            Some(WireBody::Length(left)) if left > 0 => {
                return Err(PartError::Framing(FramingError::TooShort))
            }
            Some(WireBody::Chunked) => self.buf.extend_from_slice(b"0\r\n\r\n"),
            _ => {}
        }
        self.ended = true;
        Ok(())
    }

    /// Takes what is queued, to write it elsewhere (the Lua thread's direct send).
    pub fn take_queued(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Writes what is queued.
    pub fn flush(&mut self, out: &mut impl Write) -> io::Result<()> {
        if !self.buf.is_empty() {
            out.write_all(&self.buf)?;
            self.buf.clear();
        }
        out.flush()
    }

    /// Appends `data` to the queue if small, else writes the queue and `data`.
    fn raw(&mut self, out: &mut impl Write, data: &[u8]) -> Result<(), PartError> {
        if self.buf.len() + data.len() <= COALESCE {
            self.buf.extend_from_slice(data);
        } else {
            self.flush(out)?;
            out.write_all(data)?;
        }
        Ok(())
    }
}

/// Appends `n` in hexadecimal (a chunk size).
fn push_hex(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n % 16) as usize];
        n /= 16;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The standard reason phrase of a status code (empty for codes without one).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Formats a time as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`). By hand, without an
/// allocation: it is in every response.
pub fn http_date(t: SystemTime) -> [u8; 29] {
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // Years past 9999 do not fit the format; clamp rather than misalign it.
    let year = year.clamp(0, 9999) as u64;
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(WEEKDAYS[days.rem_euclid(7) as usize]);
    out[5..7].copy_from_slice(&two(u64::from(day)));
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[12..14].copy_from_slice(&two(year / 100));
    out[14..16].copy_from_slice(&two(year % 100));
    out[17..19].copy_from_slice(&two(rem / 3600));
    out[20..22].copy_from_slice(&two(rem / 60 % 60));
    out[23..25].copy_from_slice(&two(rem % 60));
    out
}

/// Converts days since 1970-01-01 into (year, month 1..=12, day 1..=31), proleptic Gregorian.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(&http_date(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&http_date(UNIX_EPOCH), b"Thu, 01 Jan 1970 00:00:00 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&http_date(leap), b"Tue, 29 Feb 2000 00:00:00 GMT");
        let late = UNIX_EPOCH + Duration::from_secs(4_102_444_799); // 2099-12-31 23:59:59
        assert_eq!(&http_date(late), b"Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 200, 999, 65_536, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn status_line_and_framing_headers() {
        let mut r = Response::status(201);
        r.body = b"x".to_vec();
        let opts = WireOptions {
            minor_version: 0,
            head_only: false,
            keep_alive: false,
        };
        let mut out = Vec::new();
        write_response(&mut out, &r, opts).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.0 201 Created\r\nDate: "));
        assert!(text.ends_with("GMT\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"));
        r.status = 599;
        r.reason = Some(b"Odd".to_vec());
        let mut out = Vec::new();
        write_response(&mut out, &r, opts).unwrap();
        assert!(out.starts_with(b"HTTP/1.0 599 Odd\r\n"));
    }

    #[test]
    fn framing_is_ours() {
        let mut r = Response::status(404);
        r.headers.push(("Content-Length".into(), b"5".to_vec()));
        r.headers.push(("X-A".into(), b"b".to_vec()));
        r.body = b"hello world".to_vec();
        let mut out = Vec::new();
        let opts = WireOptions {
            minor_version: 1,
            head_only: false,
            keep_alive: true,
        };
        write_response(&mut out, &r, opts).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\nX-A: b\r\nDate: "));
        assert!(text.contains("\r\nContent-Length: 11\r\n\r\nhello world"));
        assert!(!text.contains("Content-Length: 5"));
    }

    #[test]
    fn head_and_204_have_no_body() {
        let mut r = Response::status(200);
        r.body = b"abc".to_vec();
        let mut out = Vec::new();
        let opts = WireOptions {
            minor_version: 1,
            head_only: true,
            keep_alive: false,
        };
        write_response(&mut out, &r, opts).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("Connection: close\r\nContent-Length: 3\r\n\r\n"));
        r.status = 204;
        let mut out = Vec::new();
        write_response(
            &mut out,
            &r,
            WireOptions {
                head_only: false,
                ..opts
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 204 No Content"));
        assert!(!text.contains("Content-Length"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
