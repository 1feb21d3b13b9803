//! The native half of the `http` API: listeners and the client. The Lua half (`http.listen`,
//! `http.get`, `http.post`, `http.request`'s argument handling, and the handle tables) is in
//! `http.lua` beside it.

use std::io;
use std::time::Duration;

use mlua::{Lua, Table, Value};

use super::args::{self, native, nothing, values, Fail, NResult};
use super::Context;
use crate::event::{HTTP_REQUEST, STREAM_READY};
use crate::event_loop::keep_events_marker;
use crate::http::client::{self, ClientRequest};
use crate::http::listener::{remove_listener, Listener, ListenerOptions};

/// Fills `native` with the `http` functions.
pub fn install(lua: &Lua, native_tbl: &Table, ctx: &Context) -> mlua::Result<()> {
    // What a response handle waits for when its connection has no room (`res.flush()`).
    native_tbl.set("stream_ready", STREAM_READY)?;
    native_tbl.set("keep_events", keep_events_marker())?;
    let c = ctx.clone();
    native_tbl.set(
        "addListener",
        native(lua, move |lua, args| {
            let port = args::integer(lua, args, 1)?;
            // Out of range: silently nothing, as CraftOS-PC.
            let Ok(port) = u16::try_from(port) else {
                return Ok(nothing());
            };
            let tls = c.tls_option(args.get(1), 2)?;
            // A port this script already listens on is restarted.
            if let Some(mut old) = c.listeners.borrow_mut().remove(&port) {
                old.stop();
            }
            let listener = Listener::start(
                std::net::SocketAddr::new(c.config.bind, port),
                ListenerOptions {
                    tls,
                    ..ListenerOptions::whole(HTTP_REQUEST)
                },
                c.config.clone(),
                c.sender.clone(),
                c.tracker.clone(),
            )
            .map_err(|e| {
                Fail::Script(format!(
                    "Could not open server: {}: {}\n",
                    bind_reason(&e),
                    std::net::SocketAddr::new(c.config.bind, port)
                ))
            })?;
            let bound = listener.port();
            c.listeners.borrow_mut().insert(bound, listener);
            Ok(values(vec![Value::Integer(bound as mlua::Integer)]))
        })?,
    )?;

    let c = ctx.clone();
    native_tbl.set(
        "removeListener",
        native(lua, move |lua, args| {
            let port = args::integer(lua, args, 1)?;
            if let Ok(port) = u16::try_from(port) {
                remove_listener(&c.listeners, port);
            }
            Ok(nothing())
        })?,
    )?;

    native_tbl.set(
        "checkURL",
        native(lua, |lua, args| {
            let url = args::bytes(lua, args, 1)?;
            Ok(match client::parse_url(&String::from_utf8_lossy(&url)) {
                Ok(_) => values(vec![Value::Boolean(true)]),
                Err(e) => args::failure(lua, e)?,
            })
        })?,
    )?;

    let c = ctx.clone();
    native_tbl.set(
        "request",
        native(lua, move |lua, args| {
            let request = client_request(lua, args, &c)?;
            if let Err(e) = client::parse_url(&request.url) {
                return args::failure(lua, e);
            }
            match client::spawn(request, c.sender.clone(), c.config.thread_stack_size) {
                Ok(()) => Ok(values(vec![Value::Boolean(true)])),
                Err(e) => args::failure(lua, e),
            }
        })?,
    )?;
    Ok(())
}

/// Builds a request from `(url, body, headers, binary)` or `({url=, body=, headers=, method=,
/// redirect=, timeout=})`. Argument types were checked by the Lua wrapper.
fn client_request(lua: &Lua, args: &[Value], ctx: &Context) -> NResult<ClientRequest> {
    let mut request = ClientRequest {
        url: String::new(),
        method: String::new(),
        body: None,
        headers: Vec::new(),
        redirect: true,
        timeout: ctx.config.client_timeout,
        max_download: ctx.config.client_max_download,
        ca_file: ctx.config.ca_file.clone(),
    };
    let mut headers = None;
    let mut method = None;
    match args.first() {
        Some(Value::Table(opts)) => {
            let url: Option<mlua::LuaString> = opts.get("url")?;
            request.url = url.map(|u| u.to_string_lossy()).unwrap_or_default();
            let body: Option<mlua::LuaString> = opts.get("body")?;
            request.body = body.map(|b| b.as_bytes().to_vec());
            headers = opts.get::<Option<Table>>("headers")?;
            method = opts
                .get::<Option<mlua::LuaString>>("method")?
                .map(|m| m.to_string_lossy());
            if let Some(false) = opts.get::<Option<bool>>("redirect")? {
                request.redirect = false;
            }
            if let Some(t) = opts.get::<Option<f64>>("timeout")? {
                if t.is_finite() && t > 0.0 {
                    request.timeout = Duration::from_secs_f64(t);
                }
            }
        }
        _ => {
            request.url = String::from_utf8_lossy(&args::bytes(lua, args, 1)?).into_owned();
            request.body = args::opt_bytes(lua, args, 2)?;
            if let Some(Value::Table(t)) = args.get(2) {
                headers = Some(t.clone());
            }
        }
    }
    if let Some(headers) = headers {
        for pair in headers.pairs::<mlua::LuaString, mlua::LuaString>() {
            let (k, v) = pair?;
            request
                .headers
                .push((k.to_string_lossy(), v.as_bytes().to_vec()));
        }
    }
    request.method = match method {
        Some(m) => m.to_ascii_uppercase(),
        None if request.body.is_some() => "POST".into(),
        None => "GET".into(),
    };
    Ok(request)
}

/// The reason a bind failed, worded like CraftOS-PC's (Poco's) messages.
pub fn bind_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "Address already in use".into(),
        io::ErrorKind::PermissionDenied => "Permission denied".into(),
        io::ErrorKind::AddrNotAvailable => "Cannot assign requested address".into(),
        _ => e.to_string(),
    }
}
