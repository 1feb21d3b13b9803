//! `http.websocket(url)` / `http.websocketAsync(url)`: outgoing WebSocket connections (`ws://`,
//! and `wss://` through `crate::tls`), on the same reader/writer threads as server connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::Read;

use tungstenite::protocol::Role;
use tungstenite::WebSocket;

use super::connection::Out;
use super::connection::{self, Duplex, Limits, Link};
use super::handshake;
use super::{next_id, WsEvent, WsEventKind, WsOrigin};
use crate::config::Config;
use crate::event::{Event, EventSender};
use crate::http::client::{parse_url, Url};

/// Checks a WebSocket URL (CC: Tweaked's wording for a wrong scheme).
pub fn parse_ws_url(url: &str) -> Result<Url, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("Must specify ws or wss".into());
    };
    match scheme.to_ascii_lowercase().as_str() {
        "ws" => parse_url(&format!("http://{rest}")),
        "wss" if cfg!(feature = "tls") => parse_url(&format!("https://{rest}")),
        "wss" => Err("wss:// is not in this build of ccserve (built without TLS)".into()),
        other => Err(format!("Invalid scheme '{other}'")),
    }
}

/// Opens a connection to `url` on its own thread; the outcome arrives as `websocket_success` or
/// `websocket_failure`. Fails at once only for a malformed URL.
pub fn spawn(
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    config: Arc<Config>,
    events: EventSender,
) -> Result<(), String> {
    let target = parse_ws_url(&url)?;
    std::thread::Builder::new()
        .name("ccserve-ws-read".into())
        // getaddrinfo may need more stack than a connection thread.
        .stack_size(config.thread_stack_size.max(256 * 1024))
        .spawn(move || {
            let id = next_id();
            let origin = WsOrigin::Client { url: url.clone() };
            if let Err(reason) = connect(id, &target, &headers, &config, &origin, &events) {
                log::debug!("websocket connection to {url} failed: {reason}");
                let failed = WsEvent {
                    origin,
                    id,
                    kind: WsEventKind::Failed(reason),
                };
                events.send_blocking(Event::Ws(Box::new(failed)));
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start websocket thread: {e}"))
}

fn connect(
    id: u64,
    target: &Url,
    headers: &[(String, Vec<u8>)],
    config: &Config,
    origin: &WsOrigin,
    events: &EventSender,
) -> Result<(), String> {
    let deadline = Instant::now() + config.client_timeout;
    let stream = crate::http::client::open(
        target,
        config.ca_file.as_deref(),
        deadline,
        config.thread_stack_size,
        config.write_timeout,
    )?;
    let _ = stream.set_write_timeout(Some(config.write_timeout));
    let limits = Limits::of(config);
    let pending = connection::start_writer(&stream, id, Role::Client, limits, events.owe())
        .map_err(|e| format!("cannot start websocket writer: {e}"))?;
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let key = handshake::client_key();
    let request = match handshake::client_request(
        &format!("{host}:{}", target.port),
        &target.target,
        &key,
        headers,
    ) {
        Ok(request) => request,
        Err(e) => {
            pending.abandon();
            return Err(e);
        }
    };
    let mut read_half = stream.try_clone().map_err(|e| e.to_string())?;
    let _ = read_half.set_read_timeout(Some(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1)),
    ));
    let answer = pending
        .out
        .send(Out::Raw(request))
        .map_err(|_| "the connection closed".to_string())
        .and_then(|()| read_answer(&mut read_half, &key));
    let leftover = match answer {
        Ok(leftover) => leftover,
        Err(e) => {
            pending.abandon();
            return Err(format!("Handshake failed: {e}"));
        }
    };
    let duplex = Duplex::new(read_half, pending.out.clone());
    let ws = WebSocket::from_partially_read(
        duplex,
        leftover,
        Role::Client,
        Some(connection::ws_config(&limits)),
    );
    let _ = stream.set_read_timeout(None);
    let control = pending.control().map_err(|e| e.to_string())?;
    let connected = Event::Ws(Box::new(WsEvent {
        origin: origin.clone(),
        id,
        kind: WsEventKind::Connected(Link(control.clone())),
    }));
    if events.send_blocking(connected) {
        connection::read_loop(ws, &pending, origin, events, None);
    } else {
        control.abort();
    }
    control.release();
    pending.finish();
    Ok(())
}

/// The largest opening-handshake answer a client reads.
const MAX_ANSWER: usize = 64 * 1024;

/// Reads the server's answer to the opening request sent with `key` and checks it; returns the
/// bytes read past its head (the first frames, if the server sent any at once).
fn read_answer(read: &mut std::net::TcpStream, key: &str) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut piece = [0u8; 4096];
    loop {
        let n = match read.read(&mut piece) {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("the server did not answer in time".into())
            }
            Err(e) => return Err(e.to_string()),
        };
        buf.extend_from_slice(&piece[..n]);
        if let Some(end) = handshake::head_end(&buf) {
            handshake::check_response(&buf[..end], key)?;
            return Ok(buf.split_off(end));
        }
        if buf.len() > MAX_ANSWER {
            return Err("the server's answer has no end of head within 64 KiB".into());
        }
    }
}
