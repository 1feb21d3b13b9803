//! The native half of `http.server` (`server.lua` beside it): listeners whose requests arrive as
//! streams, and the stream methods the Lua half builds lua-http's stream object from.
//!
//! A stream is one request/response exchange on the streaming engine: its body is read piece by
//! piece as the script asks, and its response goes out as parts. Nothing here waits: a read or a
//! write that cannot complete now returns "pending", and the Lua half suspends the handler's
//! coroutine until the exchange's [`STREAM_READY`](crate::event::STREAM_READY) event.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use std::ffi::c_int;

use mlua::{ffi, Lua, MultiValue, Table, Value};

use crate::craftos::args::{self, native, nothing, values, Fail, NResult};
use crate::craftos::Context;
use crate::event::IncomingRequest;
use crate::http::body::BodyError;
use crate::http::exchange::{BodyPoll, Exchange, Part, PushError, Room};
use crate::http::listener::{remove_listener, BodyMode, Listener, ListenerOptions};
use crate::http::response::{valid_header_name, valid_header_value, ResponseHead};
use crate::ws::connection::Limits;
use crate::ws::WsOrigin;

/// The event requests to lua-http servers arrive as (internal: the Lua half's loop takes it).
pub const STREAM_EVENT: &str = "ccserve_http_stream";

/// The userdata behind a lua-http stream: the request and its exchange. Dropping it while the
/// response is open answers `500` (the guard's rule).
pub struct Stream {
    request: IncomingRequest,
}

impl Stream {
    /// The request as it arrived (method, target, headers, addresses).
    pub(crate) fn request(&self) -> &IncomingRequest {
        &self.request
    }

    /// The exchange the request and its response travel on.
    pub(crate) fn exchange(&self) -> &Exchange {
        self.request.guard.exchange()
    }
}

/// Builds the event values for a request to a listener whose requests are streams (lua-http's,
/// and NodeMCU's `httpserver`): `event name, server id, stream userdata, exchange id`, and for
/// lua-http's streams what every stream needs at once (so no native call has to ask): the
/// request's fields ([`request_fields`]), its minor version, its connection id, and whether it
/// has a body.
pub fn event_values(lua: &Lua, request: IncomingRequest) -> mlua::Result<MultiValue> {
    request.guard.exchange().mark_delivered();
    let request_event = request.event;
    // A server is known by its listener's id (see `listen`).
    let server = request.listener;
    let id = request.guard.exchange().id();
    let mut out = Vec::with_capacity(8);
    out.extend([
        Value::String(lua.create_string(request_event)?),
        args::int_value(server as i64),
    ]);
    let info = if request_event == STREAM_EVENT {
        let (fields, has_body) = request_fields(lua, &request)?;
        Some([
            Value::Table(fields),
            Value::Integer(mlua::Integer::from(request.minor_version)),
            args::int_value(request.connection as i64),
            Value::Boolean(has_body),
        ])
    } else {
        None
    };
    out.push(Value::UserData(
        lua.create_any_userdata(Stream { request })?,
    ));
    out.push(args::int_value(id as i64));
    out.extend(info.into_iter().flatten());
    Ok(MultiValue::from_vec(out))
}

/// `nil, message, errno` for an address that could not be bound.
fn bind_failure(lua: &Lua, e: &std::io::Error, what: &str) -> NResult<MultiValue> {
    let msg = format!("{}: {what}", crate::craftos::http::bind_reason(e));
    Ok(values(vec![
        Value::Nil,
        Value::String(lua.create_string(msg)?),
        Value::Integer(e.raw_os_error().unwrap_or(0) as mlua::Integer),
    ]))
}

/// cqueues' `AF_UNIX`.
const AF_UNIX: i64 = 1;

/// A UNIX socket's `mode` as cqueues takes it: octal digits (`"0660"`, `"660"`) or the nine
/// permission characters `ls` shows (`"rw-rw----"`).
fn parse_mode(mode: &str) -> NResult<u32> {
    let bad = || {
        Fail::Script(format!(
            "'mode' must be octal permissions (\"0660\") or like \"rw-rw----\", got {mode:?}"
        ))
    };
    if !mode.is_empty() && mode.len() <= 4 && mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return u32::from_str_radix(mode, 8).map_err(|_| bad());
    }
    let chars = mode.as_bytes();
    if chars.len() != 9 {
        return Err(bad());
    }
    let mut bits = 0;
    for (i, &c) in chars.iter().enumerate() {
        let want = b"rwx"[i % 3];
        bits <<= 1;
        if c == want {
            bits |= 1;
        } else if c != b'-' {
            return Err(bad());
        }
    }
    Ok(bits)
}

/// The address family number cqueues reports (`AF_INET` 2, `AF_INET6` 10).
fn family(addr: &SocketAddr) -> i64 {
    match addr.ip() {
        IpAddr::V4(_) => 2,
        IpAddr::V6(_) => 10,
    }
}

/// `family, ip, port` of an address, as cqueues' `localname`/`peername` return them (`0`,
/// `AF_UNSPEC`, and two nils for an unknown one).
fn name_values(lua: &Lua, addr: Option<SocketAddr>) -> NResult<Vec<Value>> {
    Ok(match addr {
        Some(a) => vec![
            Value::Integer(family(&a) as mlua::Integer),
            Value::String(lua.create_string(a.ip().to_string())?),
            Value::Integer(mlua::Integer::from(a.port())),
        ],
        None => vec![Value::Integer(0), Value::Nil, Value::Nil],
    })
}

/// Runs `f` on the stream userdata given first.
pub(crate) fn with_stream<R>(
    args: &[Value],
    f: impl FnOnce(&mut Stream) -> NResult<R>,
) -> NResult<R> {
    match args.first() {
        Some(Value::UserData(ud)) => f(&mut *ud.borrow_mut::<Stream>()?),
        _ => Err(Fail::Script(
            "stream method called without its stream".into(),
        )),
    }
}

/// The errno name a body failure is reported with.
fn body_errno(e: &BodyError) -> &'static str {
    match e {
        BodyError::TooLarge => "E2BIG",
        BodyError::Timeout => "ETIMEDOUT",
        BodyError::Malformed => "EILSEQ",
        BodyError::Vanished => "EPIPE",
    }
}

/// An optional boolean option of `opts`.
fn opt_bool(opts: &Table, name: &str) -> NResult<Option<bool>> {
    match opts.get::<Value>(name)? {
        Value::Nil => Ok(None),
        Value::Boolean(b) => Ok(Some(b)),
        _ => Err(Fail::Script(format!("'{name}' must be a boolean"))),
    }
}

/// An optional positive number of seconds of `opts`.
fn opt_seconds(opts: &Table, name: &str) -> NResult<Option<Duration>> {
    match opts.get::<Value>(name)? {
        Value::Nil => Ok(None),
        Value::Integer(i) if i > 0 => Ok(Some(Duration::from_secs(i as u64))),
        Value::Number(n) if n.is_finite() && n > 0.0 => Ok(Duration::try_from_secs_f64(n).ok()),
        _ => Err(Fail::Script(format!(
            "'{name}' must be a positive number of seconds"
        ))),
    }
}

/// Fills `native` with the functions `server.lua` uses.
pub fn install(lua: &Lua, native_tbl: &Table, ctx: &Context) -> mlua::Result<()> {
    let c = ctx.clone();
    let open = ctx.stream_listeners.clone();
    // listen(host, port, options) -> server id, family, ip, port | nil, message, errno
    // listen(nil, nil, options with `path`) -> server id, AF_UNIX, path | nil, message, errno
    native_tbl.set(
        "listen",
        native(lua, move |lua, args| {
            let opts = match args.get(2) {
                Some(Value::Table(t)) => t.clone(),
                _ => lua.create_table()?,
            };
            let mut config = (*c.config).clone();
            if let Some(n) = opts.get::<Option<f64>>("max_concurrent")? {
                if n.is_finite() && n >= 1.0 {
                    config.max_connections = n as usize;
                }
            }
            if let Some(d) = opt_seconds(&opts, "connection_setup_timeout")? {
                config.header_timeout = d;
            }
            if let Some(d) = opt_seconds(&opts, "intra_stream_timeout")? {
                config.keep_alive_timeout = d;
            }
            // lua-http's `tls`: true, TLS only; false, plain only; nil, both on one port told
            // apart by the first byte (plain only when ccserve has no certificate).
            let tls = match opt_bool(&opts, "tls")? {
                None => c.server_tls.clone().map(|cert| crate::tls::TlsListen {
                    cert,
                    plain_too: true,
                }),
                Some(_) => c.tls_option(Some(&Value::Table(opts.clone())), 1)?,
            };
            let options = ListenerOptions {
                body_mode: BodyMode::Streamed,
                event: STREAM_EVENT,
                reuse_port: opt_bool(&opts, "reuseport")?.unwrap_or(false),
                v6_only: opt_bool(&opts, "v6only")?,
                report_closed: true,
                tls,
            };
            if let Some(path) = opts.get::<Option<String>>("path")? {
                let unlink = opt_bool(&opts, "unlink")?.unwrap_or(false);
                let mode = match opts.get::<Option<String>>("mode")? {
                    Some(m) => Some(parse_mode(&m)?),
                    None => None,
                };
                let listener = match Listener::start_unix(
                    std::path::Path::new(&path),
                    unlink,
                    mode,
                    options,
                    Arc::new(config),
                    c.sender.clone(),
                    c.tracker.clone(),
                ) {
                    Ok(l) => l,
                    Err(e) => return bind_failure(lua, &e, &path),
                };
                let id = listener.id();
                open.borrow_mut().insert(id, listener);
                return Ok(values(vec![
                    args::int_value(id as i64),
                    args::int_value(AF_UNIX),
                    Value::String(lua.create_string(&path)?),
                ]));
            }
            let host = args::bytes(lua, args, 1)?;
            let port = args::integer(lua, args, 2)?;
            let Ok(port) = u16::try_from(port) else {
                return Err(Fail::Script(format!("port {port} out of range (0-65535)")));
            };
            let host = String::from_utf8_lossy(&host).into_owned();
            let ip: IpAddr = match host.as_str() {
                "*" | "" => c.config.bind,
                "localhost" => IpAddr::from([127, 0, 0, 1]),
                h => h
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| {
                        Fail::Script(format!(
                        "host '{host}' is not an IP address (ccserve binds addresses, not names)"
                    ))
                    })?,
            };
            let addr = SocketAddr::new(ip, port);
            let listener = match Listener::start(
                addr,
                options,
                Arc::new(config),
                c.sender.clone(),
                c.tracker.clone(),
            ) {
                Ok(l) => l,
                Err(e) => return bind_failure(lua, &e, &addr.to_string()),
            };
            // Requests carry the listener's id; a server is known by it.
            let local = listener.local_addr();
            let id = listener.id();
            open.borrow_mut().insert(id, listener);
            let mut out = vec![args::int_value(id as i64)];
            out.extend(name_values(lua, Some(local))?);
            Ok(values(out))
        })?,
    )?;

    let open = ctx.stream_listeners.clone();
    native_tbl.set(
        "close",
        native(lua, move |lua, args| {
            let id = args::integer(lua, args, 1)?;
            if let Ok(id) = u64::try_from(id) {
                remove_listener(&open, id);
            }
            Ok(nothing())
        })?,
    )?;

    // names(stream) -> peer family, ip, port, local family, ip, port, whether it is TLS (asked
    // once per connection: the Lua half keeps them in its connection object).
    native_tbl.set(
        "names",
        native(lua, |lua, args| {
            with_stream(args, |s| {
                let mut out = name_values(lua, s.request.peer)?;
                out.extend(name_values(lua, s.request.local)?);
                out.push(Value::Boolean(s.request.tls));
                Ok(values(out))
            })
        })?,
    )?;

    // read(stream, max) -> data | true (end) | false, errno | nil (pending: wait for the event)
    native_tbl.set(
        "read",
        native(lua, |lua, args| {
            let max = args::integer(lua, args, 2)?.max(1) as usize;
            with_stream(args, |s| {
                Ok(match s.exchange().read_body(max) {
                    BodyPoll::Data(d) => values(vec![Value::String(lua.create_string(d)?)]),
                    BodyPoll::End => values(vec![Value::Boolean(true)]),
                    BodyPoll::Pending => values(vec![Value::Nil]),
                    BodyPoll::Failed(e) => values(vec![
                        Value::Boolean(false),
                        Value::String(lua.create_string(body_errno(&e))?),
                    ]),
                })
            })
        })?,
    )?;

    // room(stream) -> true (go on) | nil (pending) | false (the client has gone)
    native_tbl.set(
        "room",
        native(lua, |_, args| {
            with_stream(args, |s| {
                let ex = s.exchange();
                Ok(values(vec![if !ex.ask_room() {
                    Value::Nil
                } else {
                    Value::Boolean(!ex.is_gone())
                }]))
            })
        })?,
    )?;

    // head(stream, status, {name, value, ...}, length|nil) -> true | false, errno
    native_tbl.set(
        "head",
        native(lua, |lua, args| {
            let status = args::integer(lua, args, 2)?;
            let Ok(status) = u16::try_from(status).map(|s| s.clamp(100, 999)) else {
                return Err(args::bad_arg(2, "status out of range"));
            };
            let headers = header_list(args, 3)?;
            let length = args::opt_number(lua, args, 4)?.map(|n| n as u64);
            with_stream(args, |s| {
                let part = if status == 100 {
                    Part::Continue
                } else {
                    Part::Head(ResponseHead {
                        status,
                        reason: None,
                        headers,
                        length,
                    })
                };
                push_result(lua, s.exchange().push(part))
            })
        })?,
    )?;

    // respond(stream, status, {name, value, ...}, length|nil, data|nil, end) -> as `data`: the
    // head and the first data (and the end) in one push, so a small response leaves in one write.
    native_tbl.set(
        "respond",
        native(lua, |lua, args| {
            let status = args::integer(lua, args, 2)?;
            let status = u16::try_from(status)
                .ok()
                .filter(|s| (101..=999).contains(s))
                .ok_or_else(|| args::bad_arg(2, "status out of range"))?;
            let headers = header_list(args, 3)?;
            let length = args::opt_number(lua, args, 4)?.map(|n| n as u64);
            let data = args::opt_bytes(lua, args, 5)?.unwrap_or_default();
            let end = args::truthy(args, 6);
            let mut parts = vec![Part::Head(ResponseHead {
                status,
                reason: None,
                headers,
                length,
            })];
            if !data.is_empty() {
                parts.push(Part::Data(data));
            }
            if end {
                parts.push(Part::End);
            }
            with_stream(args, |s| push_result(lua, s.exchange().push_all(parts)))
        })?,
    )?;

    // data(stream, bytes, end) -> true | nil (full: wait before the next) | false, errno
    native_tbl.set(
        "data",
        native(lua, |lua, args| {
            let data = args::bytes(lua, args, 2)?;
            let end = args::truthy(args, 3);
            with_stream(args, |s| {
                let mut parts = Vec::with_capacity(2);
                if !data.is_empty() {
                    parts.push(Part::Data(data));
                }
                if end {
                    parts.push(Part::End);
                }
                push_result(lua, s.exchange().push_all(parts))
            })
        })?,
    )?;

    // shutdown(stream): finishes the exchange as lua-http does when a handler returns: `503` if
    // no head was sent; a response left unfinished is cut off.
    native_tbl.set(
        "shutdown",
        native(lua, |_, args| {
            with_stream(args, |s| {
                s.exchange().abandon(503);
                Ok(nothing())
            })
        })?,
    )?;

    // websocket(stream, {name, value, ...}) -> true | false, errno: sends the 101 head with
    // these headers and hands the connection to a WebSocket reader/writer; its events carry the
    // exchange id.
    let c = ctx.clone();
    native_tbl.set(
        "websocket",
        native(lua, move |lua, args| {
            let headers = header_list(args, 2)?;
            let events = c.sender.clone();
            let limits = Limits::of(&c.config);
            with_stream(args, |s| {
                let ex = s.exchange();
                let origin = WsOrigin::Stream { id: ex.id() };
                let head = Part::Head(ResponseHead {
                    status: 101,
                    reason: None,
                    headers,
                    length: None,
                });
                let result = ex.push(head).and_then(|_| {
                    ex.push(Part::Upgrade(Box::new(move |upgraded| {
                        crate::ws::server::serve_upgraded(upgraded, origin, &events, limits)
                    })))
                });
                push_result(lua, result)
            })
        })?,
    )?;
    Ok(())
}

/// The request's fields as `http.headers` keeps them (name, value, never_index per field;
/// `_count`): the request line as pseudo-headers, then the fields in order, names in lower case,
/// `Host` as `:authority`; and whether the request has a body. Every request to a lua-http
/// server comes through here, so the table is built with Lua's C API: through mlua's safe API
/// each name and value cost a registry reference on the way in (this takes 40 % fewer
/// instructions).
fn request_fields(lua: &Lua, r: &IncomingRequest) -> mlua::Result<(Table, bool)> {
    let connect = r.method == "CONNECT";
    let mut fields: Vec<(&[u8], &[u8], bool)> = Vec::with_capacity(r.headers.len() + 3);
    fields.push((b":method", r.method.as_bytes(), false));
    fields.push((
        if connect { b":authority" } else { b":path" },
        r.target.as_bytes(),
        false,
    ));
    fields.push((b":scheme", if r.tls { b"https" } else { b"http" }, false));
    // Lower-case names, all in one buffer; `ends[i]` is where field i's name ends.
    let mut lower = Vec::with_capacity(r.headers.iter().map(|(n, _)| n.len()).sum());
    let mut ends = Vec::with_capacity(r.headers.len());
    for (name, _) in &r.headers {
        lower.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
        ends.push(lower.len());
    }
    let (mut has_authority, mut has_body) = (connect, false);
    let mut start = 0;
    for ((_, value), &end) in r.headers.iter().zip(&ends) {
        let name = &lower[start..end];
        start = end;
        match name {
            b"host" => {
                if !has_authority {
                    fields.push((b":authority", value, false));
                    has_authority = true;
                }
                continue;
            }
            b"transfer-encoding" => has_body = true,
            b"content-length" => has_body |= value.trim_ascii() != b"0",
            _ => {}
        }
        let never = matches!(
            name,
            b"authorization" | b"proxy-authorization" | b"cookie" | b"set-cookie"
        );
        fields.push((name, value, never));
    }
    let fields = &fields;
    let slots = c_int::try_from(3 * fields.len()).unwrap_or(c_int::MAX);
    // SAFETY: `exec_raw` runs the closure as a C function called in protected mode, so the
    // stack has room for LUA_MINSTACK (20) values; the closure keeps at most 2 there (the
    // table, and one value that `rawseti`/`setfield` pops again) and leaves the table.
    // Every pointer passed is a live borrowed slice with its length (`lua_pushlstring` copies
    // the bytes), or a NUL-terminated literal. If Lua raises (out of memory), it unwinds
    // through the closure, whose frame owns nothing that needs dropping: only borrows and
    // integers; the `Vec`s above belong to this function, which gets the error as a `Result`.
    let table = unsafe {
        lua.exec_raw::<Table>((), |state| {
            ffi::lua_createtable(state, slots, 1);
            let mut i: ffi::lua_Integer = 0;
            for &(name, value, never) in fields {
                ffi::lua_pushlstring(state, name.as_ptr().cast(), name.len());
                ffi::lua_rawseti(state, -2, i + 1);
                ffi::lua_pushlstring(state, value.as_ptr().cast(), value.len());
                ffi::lua_rawseti(state, -2, i + 2);
                ffi::lua_pushboolean(state, c_int::from(never));
                ffi::lua_rawseti(state, -2, i + 3);
                i += 3;
            }
            ffi::lua_pushinteger(state, i / 3);
            ffi::lua_setfield(state, -2, c"_count".as_ptr());
        })?
    };
    Ok((table, has_body))
}

/// Header fields from argument `i`: a flat list `{name, value, name, value, ...}`, or the same
/// joined into one string with NUL between the names and values (`server.lua` builds that from
/// a headers object, pseudo-headers removed: one string crosses into Rust instead of one per
/// name and value). A joined list is only as sound as its parts: a NUL inside a value would
/// shift the pieces after it, so a caller joins only fields that passed the Lua half's
/// `header_fault` (lua-http's `write_headers` does); an odd number of pieces is an error.
fn header_list(args: &[Value], i: usize) -> NResult<Vec<(String, Vec<u8>)>> {
    let mut headers = Vec::new();
    match args.get(i - 1) {
        Some(Value::String(joined)) => {
            let joined = joined.as_bytes();
            if joined.is_empty() {
                return Ok(headers);
            }
            let mut pieces = joined.split(|&b| b == 0);
            while let Some(name) = pieces.next() {
                let Some(value) = pieces.next() else {
                    return Err(Fail::Script(format!(
                        "header {:?} has no value (a value cannot contain NUL)",
                        String::from_utf8_lossy(name)
                    )));
                };
                headers.push(checked_field(name, value)?);
            }
        }
        Some(Value::Table(list)) => {
            for i in (1..=list.raw_len()).step_by(2) {
                let name: mlua::LuaString = list.raw_get(i)?;
                let value: mlua::LuaString = list.raw_get(i + 1)?;
                headers.push(checked_field(&name.as_bytes(), &value.as_bytes())?);
            }
        }
        _ => return Err(args::bad_type(args, i, "table")),
    }
    Ok(headers)
}

/// One response header field, checked.
fn checked_field(name: &[u8], value: &[u8]) -> NResult<(String, Vec<u8>)> {
    if !valid_header_name(name) {
        return Err(Fail::Script(format!(
            "invalid header name {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    if !valid_header_value(value) {
        return Err(Fail::Script(format!(
            "invalid value for header {:?}: it contains CR, LF or NUL",
            String::from_utf8_lossy(name)
        )));
    }
    // A valid name is ASCII.
    Ok((String::from_utf8_lossy(name).into_owned(), value.to_vec()))
}

/// What a push reports to Lua: `true`, `nil` when the buffer is full, or `false, errno`.
fn push_result(lua: &Lua, result: Result<Room, PushError>) -> NResult<MultiValue> {
    Ok(match result {
        Ok(Room::Free) => values(vec![Value::Boolean(true)]),
        Ok(Room::Full) => values(vec![Value::Nil]),
        Err(e) => {
            let errno = match e {
                PushError::Gone => "EPIPE",
                PushError::Closed => "ESTALE",
                PushError::HeadSent => "EINVAL",
            };
            values(vec![
                Value::Boolean(false),
                Value::String(lua.create_string(errno)?),
            ])
        }
    })
}
