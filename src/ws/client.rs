//! `http.websocket(url)` / `http.websocketAsync(url)`: outgoing WebSocket connections (`ws://`,
//! and `wss://` through `crate::tls`), on the same reader/writer threads as server connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::Role;

use super::connection::{self, Duplex, Limits, Link};
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
    let mut request = format!("ws://{host}:{}{}", target.port, target.target)
        .into_client_request()
        .map_err(|e| format!("URL malformed: {e}"))?;
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) else {
            pending.abandon();
            return Err(format!("Invalid header '{name}'"));
        };
        request.headers_mut().insert(name, value);
    }
    let read_half = stream.try_clone().map_err(|e| e.to_string())?;
    let _ = read_half.set_read_timeout(Some(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1)),
    ));
    let duplex = Duplex::new(read_half, pending.out.clone());
    let ws = match tungstenite::client::client_with_config(
        request,
        duplex,
        Some(connection::ws_config(&limits)),
    ) {
        Ok((ws, _response)) => ws,
        Err(e) => {
            pending.abandon();
            return Err(format!("Handshake failed: {e}"));
        }
    };
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
