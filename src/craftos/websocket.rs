//! The native half of the WebSocket API: servers (`http.websocketServer`), client connections
//! (`http.websocket`), and the handle methods. The Lua half is `websocket.lua` beside it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use std::ffi::c_void;

use mlua::{Function, LightUserData, Lua, MultiValue, Table, Value};

use super::args::{self, closed_file, native, nothing, values, Fail, NResult};
use super::Context;
use crate::ws::client;
use crate::ws::connection::{Control, Link, SendError};
use crate::ws::server::WsServer;
use crate::ws::{WsEvent, WsEventKind, WsOrigin};

/// Open WebSocket servers by port, with a generation so a handle only ever closes its own server.
pub type WsServers = Rc<RefCell<HashMap<u16, (u64, WsServer)>>>;

/// Connections handed to the script (weakly: the handles own them).
pub type WsLinks = Rc<RefCell<Vec<Weak<Control>>>>;

/// The userdata behind a server handle. Collecting it closes the server, as in CraftOS-PC.
pub struct ServerHandle {
    port: u16,
    generation: u64,
    servers: WsServers,
}

impl ServerHandle {
    fn close(&self) {
        let mut servers = self.servers.borrow_mut();
        if servers
            .get(&self.port)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            let removed = servers.remove(&self.port);
            drop(servers);
            drop(removed); // stops the server and closes its clients
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.close();
    }
}

/// The userdata behind a connection handle (a server's client, or an outgoing connection).
pub struct ConnHandle {
    link: Link,
}

impl ConnHandle {
    /// Wraps a connection that just opened.
    pub fn new(link: Link) -> ConnHandle {
        ConnHandle { link }
    }

    /// The connection's controls (lua-http's WebSocket objects send through them too).
    pub fn control(&self) -> &Control {
        &self.link.0
    }
}

fn with<T: 'static, R>(args: &[Value], f: impl FnOnce(&T) -> NResult<R>) -> NResult<R> {
    match args.first() {
        Some(Value::UserData(ud)) => f(&*ud.borrow::<T>()?),
        _ => Err(Fail::Script(
            "handle method called without its handle".into(),
        )),
    }
}

/// Fills `native` with the WebSocket functions.
pub fn install(lua: &Lua, native_tbl: &Table, ctx: &Context) -> mlua::Result<()> {
    let c = ctx.clone();
    let generation = Rc::new(std::cell::Cell::new(0u64));
    native_tbl.set(
        "websocketServer",
        native(lua, move |lua, args| {
            let port = args::integer(lua, args, 1)?;
            if let Some(v) = args.get(1) {
                if !matches!(v, Value::Nil | Value::Table(_)) {
                    return Err(args::bad_type(args, 2, "table"));
                }
            }
            let port = u16::try_from(port).map_err(|_| args::bad_arg(1, "port out of range"))?;
            let tls = c.tls_option(args.get(2), 3)?;
            let fail = |msg: String| -> NResult<mlua::MultiValue> {
                Ok(values(vec![
                    Value::Nil,
                    Value::String(lua.create_string(msg)?),
                ]))
            };
            if port != 0 && c.ws_servers.borrow().contains_key(&port) {
                return fail("Port already in use".into());
            }
            let server = match WsServer::start(port, false, tls, c.config.clone(), c.sender.clone())
            {
                Ok(s) => s,
                Err(e) => {
                    let addr = std::net::SocketAddr::new(c.config.bind, port);
                    return fail(format!("{}: {addr}", super::http::bind_reason(&e)));
                }
            };
            let bound = server.port();
            generation.set(generation.get() + 1);
            c.ws_servers
                .borrow_mut()
                .insert(bound, (generation.get(), server));
            let handle = ServerHandle {
                port: bound,
                generation: generation.get(),
                servers: c.ws_servers.clone(),
            };
            let ud = lua.create_any_userdata(handle)?;
            Ok(values(vec![
                Value::UserData(ud),
                Value::Integer(bound as mlua::Integer),
            ]))
        })?,
    )?;
    native_tbl.set(
        "ws_server_close",
        native(lua, |_, args| {
            with::<ServerHandle, _>(args, |h| {
                h.close();
                Ok(nothing())
            })
        })?,
    )?;
    native_tbl.set(
        "ws_server_is_open",
        native(lua, |_, args| {
            with::<ServerHandle, _>(args, |h| {
                let open = h
                    .servers
                    .borrow()
                    .get(&h.port)
                    .is_some_and(|(g, _)| *g == h.generation);
                Ok(values(vec![Value::Boolean(open)]))
            })
        })?,
    )?;
    native_tbl.set(
        "ws_send",
        native(lua, |lua, args| {
            let data = args::bytes(lua, &args[1..], 1)?;
            let binary = args::truthy(args, 3);
            with::<ConnHandle, _>(args, |h| match h.link.0.send(data, binary) {
                Ok(()) => Ok(nothing()),
                Err(SendError::TooLarge) => Err(Fail::Script("Message is too large".into())),
                Err(SendError::Closed) => Err(closed_file()),
            })
        })?,
    )?;
    native_tbl.set(
        "ws_close",
        native(lua, |_, args| {
            with::<ConnHandle, _>(args, |h| {
                h.link.0.close(1000, "");
                Ok(nothing())
            })
        })?,
    )?;
    native_tbl.set(
        "ws_is_closed",
        native(lua, |_, args| {
            with::<ConnHandle, _>(args, |h| {
                Ok(values(vec![Value::Boolean(h.link.0.is_closed())]))
            })
        })?,
    )?;
    let c = ctx.clone();
    native_tbl.set(
        "websocket_legacy_server",
        native(lua, move |lua, args| {
            let port = args::integer(lua, args, 1)?;
            let port = u16::try_from(port).map_err(|_| args::bad_arg(1, "port out of range"))?;
            let running = c
                .ws_servers
                .borrow()
                .get(&port)
                .is_some_and(|(_, server)| !server.is_stopped());
            if running {
                return Ok(values(vec![Value::Boolean(true)]));
            }
            match WsServer::start(port, true, None, c.config.clone(), c.sender.clone()) {
                Ok(server) => {
                    let bound = server.port();
                    // Generation 0: no handle owns an older-API server.
                    let old = c.ws_servers.borrow_mut().insert(bound, (0, server));
                    drop(old);
                    Ok(values(vec![
                        Value::Boolean(true),
                        Value::Integer(bound as mlua::Integer),
                    ]))
                }
                Err(e) => {
                    let addr = std::net::SocketAddr::new(c.config.bind, port);
                    let msg = format!("{}: {addr}", super::http::bind_reason(&e));
                    args::failure(lua, msg)
                }
            }
        })?,
    )?;
    let c = ctx.clone();
    native_tbl.set(
        "websocket_connect",
        native(lua, move |lua, args| {
            let url = String::from_utf8_lossy(&args::bytes(lua, args, 1)?).into_owned();
            let mut headers = Vec::new();
            if let Some(Value::Table(t)) = args.get(1) {
                for pair in t.pairs::<mlua::LuaString, mlua::LuaString>() {
                    let (k, v) = pair?;
                    headers.push((k.to_string_lossy(), v.as_bytes().to_vec()));
                }
            }
            match client::spawn(url, headers, c.config.clone(), c.sender.clone()) {
                Ok(()) => Ok(values(vec![Value::Boolean(true)])),
                Err(e) => args::failure(lua, e),
            }
        })?,
    )?;
    Ok(())
}

/// Turns WebSocket events into the values scripts receive, per API generation.
pub struct WsApi {
    make_server_client: Function,
    make_legacy_client: Function,
    make_client: Function,
    servers: WsServers,
    links: WsLinks,
}

impl WsApi {
    /// Takes the handle factories `websocket.lua` returned.
    pub fn new(factories: &Table, servers: WsServers, links: WsLinks) -> mlua::Result<WsApi> {
        Ok(WsApi {
            make_server_client: factories.get("server_client")?,
            make_legacy_client: factories.get("legacy_client")?,
            make_client: factories.get("client")?,
            servers,
            links,
        })
    }

    /// Wraps a new connection for the script, remembering it so it can be closed at exit.
    fn conn_handle(&self, link: Link) -> ConnHandle {
        let mut links = self.links.borrow_mut();
        if links.len() >= 64 && links.len().is_power_of_two() {
            links.retain(|l| l.strong_count() > 0);
        }
        links.push(Arc::downgrade(&link.0));
        ConnHandle::new(link)
    }

    /// The event's name and arguments, in each generation's order.
    pub fn event_values(&self, lua: &Lua, ev: WsEvent) -> mlua::Result<MultiValue> {
        let s = |b: &[u8]| lua.create_string(b).map(Value::String);
        // The client ID: an opaque light userdata, equal only to itself, never reused.
        let id = Value::LightUserData(LightUserData(ev.id as usize as *mut c_void));
        let mut out = vec![s(ev.name().as_bytes())?];
        match (ev.origin, ev.kind) {
            (WsOrigin::Server { port }, WsEventKind::Connected(link)) => {
                let ud = lua.create_any_userdata(self.conn_handle(link))?;
                let handle: Table = self.make_server_client.call((ud, id))?;
                out.extend([Value::Integer(port as mlua::Integer), Value::Table(handle)]);
            }
            (WsOrigin::LegacyServer { port }, WsEventKind::Connected(link)) => {
                let ud = lua.create_any_userdata(self.conn_handle(link))?;
                let port = Value::Integer(port as mlua::Integer);
                let handle: Table = self
                    .make_legacy_client
                    .call((ud, port.clone(), id.clone()))?;
                out.extend([port, Value::Table(handle), id]);
            }
            (WsOrigin::Client { url }, WsEventKind::Connected(link)) => {
                let ud = lua.create_any_userdata(self.conn_handle(link))?;
                let url = s(url.as_bytes())?;
                let handle: Table = self.make_client.call((ud, url.clone()))?;
                out.extend([url, Value::Table(handle)]);
            }
            (WsOrigin::Stream { id: stream }, kind) => {
                out.push(args::int_value(stream as i64));
                match kind {
                    WsEventKind::Connected(link) => {
                        let ud = lua.create_any_userdata(self.conn_handle(link))?;
                        out.extend([s(b"open")?, Value::UserData(ud)]);
                    }
                    WsEventKind::Message(data, binary) => {
                        out.extend([s(b"message")?, s(&data)?, Value::Boolean(binary)]);
                    }
                    WsEventKind::Closed { reason, code } => {
                        out.push(s(b"closed")?);
                        out.push(match reason {
                            Some(r) => s(r.as_bytes())?,
                            None => Value::Nil,
                        });
                        out.push(code.map_or(Value::Nil, |c| Value::Integer(c as mlua::Integer)));
                    }
                    WsEventKind::Failed(_) | WsEventKind::ServerClosed => {}
                }
            }
            (WsOrigin::LegacyServer { port }, kind) => {
                out.push(Value::Integer(port as mlua::Integer));
                match kind {
                    WsEventKind::Message(data, binary) => {
                        out.extend([s(&data)?, Value::Boolean(binary), id]);
                    }
                    WsEventKind::ServerClosed => {
                        // Forget the stopped server, unless the script already started a new one.
                        let mut servers = self.servers.borrow_mut();
                        if servers.get(&port).is_some_and(|(_, srv)| srv.is_stopped()) {
                            let old = servers.remove(&port);
                            drop(servers);
                            drop(old);
                        }
                    }
                    _ => out.push(id),
                }
            }
            (origin, kind) => {
                out.push(match origin {
                    WsOrigin::Client { url } => s(url.as_bytes())?,
                    _ => id,
                });
                match kind {
                    WsEventKind::Message(data, binary) => {
                        out.extend([s(&data)?, Value::Boolean(binary)]);
                    }
                    WsEventKind::Closed { reason, code } => {
                        out.push(match reason {
                            Some(r) => s(r.as_bytes())?,
                            None => Value::Nil,
                        });
                        out.push(code.map_or(Value::Nil, |c| Value::Integer(c as mlua::Integer)));
                    }
                    WsEventKind::Failed(reason) => out.push(s(reason.as_bytes())?),
                    WsEventKind::Connected(_) | WsEventKind::ServerClosed => {}
                }
            }
        }
        Ok(MultiValue::from_vec(out))
    }
}
