//! The HTTP client behind `http.request`, `http.get` and `http.post`: HTTP/1.1 over a blocking
//! socket (HTTPS through `crate::tls`), one short-lived thread per request, reusing the server's
//! body framing.

use std::io::Write;
use std::time::{Duration, Instant};

use super::body::{read_body, BodyError, Framing};
use super::input::{Input, ReadError};
use super::response::reason_phrase;
use crate::event::{Event, EventSender};

/// What the script asked for.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// The URL as given; events name the request by it.
    pub url: String,
    /// `GET` unless a body is given (`POST`) or the script chose one.
    pub method: String,
    /// Request body.
    pub body: Option<Vec<u8>>,
    /// Extra request headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Follow redirects (default true, as CC: Tweaked).
    pub redirect: bool,
    /// Deadline for the whole exchange.
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_download: usize,
    /// Certificate authorities trusted beside the system's, for `https://` (`--ca-file`).
    pub ca_file: Option<std::path::PathBuf>,
}

/// A response received.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    /// Status code.
    pub code: u16,
    /// Reason phrase as sent.
    pub reason: Vec<u8>,
    /// Header fields, names as the server spelled them.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The result of one request, delivered as `http_success` or `http_failure`.
#[derive(Debug)]
pub struct ClientOutcome {
    /// The URL as the script gave it.
    pub url: String,
    /// The response, or why there is none.
    pub result: Result<ClientResponse, String>,
}

impl ClientOutcome {
    /// `http_success` for a 2xx/3xx response, `http_failure` otherwise.
    pub fn event_name(&self) -> &'static str {
        match &self.result {
            Ok(r) if (200..400).contains(&r.code) => "http_success",
            _ => "http_failure",
        }
    }
}

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https://`: the connection is TLS.
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (80, or 443 for `https://`, if absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

/// Parses and checks a URL the way CC: Tweaked's `http.checkURL` words its errors.
pub fn parse_url(url: &str) -> Result<Url, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("Must specify http or https".into());
    };
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" if cfg!(feature = "tls") => true,
        "https" => return Err("HTTPS is not in this build of ccserve (built without TLS)".into()),
        other => return Err(format!("Invalid protocol '{other}'")),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let tail = tail.split('#').next().unwrap_or("");
    let target = match tail.chars().next() {
        None => "/".to_string(),
        Some('?') => format!("/{tail}"),
        _ => tail.to_string(),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("URL malformed")?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") if tls => 443,
        None | Some("") => 80,
        Some(p) => p.parse().map_err(|_| "URL malformed".to_string())?,
    };
    if host.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("URL malformed".into());
    }
    Ok(Url {
        tls,
        host: host.to_string(),
        port,
        target,
    })
}

/// Connects to `url` within `deadline`; for `https://` (and `wss://`), runs the TLS handshake,
/// trusting `ca_file` beside the system's store, and returns the plain end (`crate::tls`;
/// `stack` and `write_timeout` are its pump threads').
pub fn open(
    url: &Url,
    ca_file: Option<&std::path::Path>,
    deadline: Instant,
    stack: usize,
    write_timeout: Duration,
) -> Result<std::net::TcpStream, String> {
    let stream = crate::net::connect(&url.host, url.port, deadline)?;
    if !url.tls {
        return Ok(stream);
    }
    crate::tls::connect(stream, &url.host, ca_file, deadline, stack, write_timeout)
}

/// Starts the request on its own thread; its outcome arrives as an event.
pub fn spawn(request: ClientRequest, events: EventSender, stack_size: usize) -> Result<(), String> {
    std::thread::Builder::new()
        .name("ccserve-client".into())
        // getaddrinfo may need more stack than a connection thread.
        .stack_size(stack_size.max(256 * 1024))
        .spawn(move || {
            let result = perform(&request);
            if let Err(e) = &result {
                log::debug!("request to {} failed: {e}", request.url);
            }
            let outcome = ClientOutcome {
                url: request.url,
                result,
            };
            let _ = events.send_within(
                Event::HttpClient(Box::new(outcome)),
                Duration::from_secs(3600),
            );
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start request thread: {e}"))
}

/// Performs the request, following redirects.
pub fn perform(request: &ClientRequest) -> Result<ClientResponse, String> {
    let deadline = Instant::now() + request.timeout;
    let mut url = parse_url(&request.url)?;
    let mut method = request.method.clone();
    let mut body = request.body.clone();
    for _ in 0..16 {
        let response = exchange(&url, &method, body.as_deref(), request, deadline)?;
        let location = response
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("location"))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        match (response.code, location) {
            (301 | 302 | 303 | 307 | 308, Some(loc)) if request.redirect => {
                url = if loc.starts_with('/') {
                    Url { target: loc, ..url }
                } else {
                    parse_url(&loc)?
                };
                if response.code == 303 || (response.code <= 302 && method == "POST") {
                    method = "GET".into();
                    body = None;
                }
            }
            _ => return Ok(response),
        }
    }
    Err("Too many redirects".into())
}

fn exchange(
    url: &Url,
    method: &str,
    body: Option<&[u8]>,
    request: &ClientRequest,
    deadline: Instant,
) -> Result<ClientResponse, String> {
    let mut stream = open(
        url,
        request.ca_file.as_deref(),
        deadline,
        64 * 1024,
        request.timeout,
    )?;
    let _ = stream.set_write_timeout(Some(request.timeout));
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let mut head = format!("{method} {} HTTP/1.1\r\n", url.target).into_bytes();
    let has = |name: &str| {
        request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if !has("host") {
        if url.port == if url.tls { 443 } else { 80 } {
            write!(head, "Host: {host}\r\n").ok();
        } else {
            write!(head, "Host: {host}:{}\r\n", url.port).ok();
        }
    }
    if !has("user-agent") {
        write!(
            head,
            "User-Agent: ccserve/{}\r\n",
            env!("CARGO_PKG_VERSION")
        )
        .ok();
    }
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        write!(head, "Content-Length: {}\r\n", body.len()).ok();
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    if let Some(body) = body {
        head.extend_from_slice(body);
    }
    stream
        .write_all(&head)
        .map_err(|e| format!("Could not send request: {e}"))?;

    let mut input = Input::new(stream);
    loop {
        let (code, reason, headers) = read_response_head(&mut input, deadline)?;
        if (100..200).contains(&code) {
            continue;
        }
        let framing = if method == "HEAD" || code == 204 || code == 304 {
            Framing::Empty
        } else if headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().ends_with(b"chunked")
        }) {
            Framing::Chunked
        } else if let Some((_, v)) = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or("Malformed Content-Length in response")?;
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        let body =
            read_body(&mut input, framing, request.max_download, deadline).map_err(
                |e| match e {
                    BodyError::TooLarge => "Response is too large".to_string(),
                    BodyError::Timeout => "Timed out".to_string(),
                    BodyError::Malformed => "Malformed response body".to_string(),
                    BodyError::Vanished => {
                        "Connection closed before the end of the response".into()
                    }
                },
            )?;
        return Ok(ClientResponse {
            code,
            reason,
            headers,
            body,
        });
    }
}

type Head = (u16, Vec<u8>, Vec<(String, Vec<u8>)>);

fn read_response_head(input: &mut Input, deadline: Instant) -> Result<Head, String> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(input.buffered()) {
            Ok(httparse::Status::Complete(len)) => {
                let code = resp.code.unwrap_or(0);
                let reason = match resp.reason {
                    Some(r) if !r.is_empty() => r.as_bytes().to_vec(),
                    _ => reason_phrase(code).as_bytes().to_vec(),
                };
                let headers = resp
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect();
                input.consume(len);
                return Ok((code, reason, headers));
            }
            Ok(httparse::Status::Partial) => {
                if input.buffered().len() > 64 * 1024 {
                    return Err("Response head is too large".into());
                }
            }
            Err(e) => return Err(format!("Malformed response: {e}")),
        }
        match input.fill(deadline) {
            Ok(_) => {}
            Err(ReadError::Timeout) => return Err("Timed out".into()),
            Err(ReadError::Closed) => return Err("Connection closed without a response".into()),
            Err(ReadError::Io(e)) => return Err(format!("Could not read response: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/a?b=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 8080, "/a?b=1")
        );
        let u = parse_url("http://example.com").unwrap();
        assert_eq!((u.tls, u.port, u.target.as_str()), (false, 80, "/"));
        if cfg!(feature = "tls") {
            let u = parse_url("HTTPS://example.com/x").unwrap();
            assert_eq!((u.tls, u.port, u.target.as_str()), (true, 443, "/x"));
        }
        let u = parse_url("http://[::1]:81?x").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 81, "/?x")
        );
        assert_eq!(
            parse_url("example.com").unwrap_err(),
            "Must specify http or https"
        );
        assert_eq!(parse_url("ftp://x/").unwrap_err(), "Invalid protocol 'ftp'");
        assert_eq!(parse_url("http://:80/").unwrap_err(), "URL malformed");
        assert_eq!(parse_url("http://h:99999/").unwrap_err(), "URL malformed");
    }
}
