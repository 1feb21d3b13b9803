//! The CraftOS APIs a script sees (the environment of CraftOS-PC's server scripts, and the base
//! every script runs in), one module per API. Each has a native half in Rust (functions put in a
//! private `native` table) and a Lua half beside it (`http.rs` and `http.lua`, ...) that builds the
//! public table from them, as CraftOS-PC's ROM does. This module wires them together and turns
//! native events into the Lua values a script receives.

pub mod args;
pub mod fs;
pub mod handles;
pub mod http;
pub mod os;
pub mod system;
pub mod websocket;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::embedded::EmbeddedLua;
use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::config::Config;
use crate::event::{Event, EventSender, EventValue, CONNECTION_CLOSED, HTTP_REQUEST, STREAM_READY};
use crate::event_loop::{Queued, Scheduler};
use crate::http::listener::{Listener, ResponseTracker};
use handles::{ClientHandle, ServerExchange};

const PRELUDE_LUA: EmbeddedLua = embedded_lua!("craftos/prelude.lua");
const OS_LUA: EmbeddedLua = embedded_lua!("craftos/os.lua");
const HTTP_LUA: EmbeddedLua = embedded_lua!("craftos/http.lua");
const PARALLEL_LUA: EmbeddedLua = embedded_lua!("craftos/parallel.lua");
const WEBSOCKET_LUA: EmbeddedLua = embedded_lua!("craftos/websocket.lua");
const TEXTUTILS_LUA: EmbeddedLua = embedded_lua!("craftos/textutils.lua");
const FS_LUA: EmbeddedLua = embedded_lua!("craftos/fs.lua");
const SYSTEM_LUA: EmbeddedLua = embedded_lua!("craftos/system.lua");

/// What the API functions share with the runtime.
#[derive(Clone)]
pub struct Context {
    /// Limits and timeouts.
    pub config: Arc<Config>,
    /// For native threads started by API calls.
    pub sender: EventSender,
    /// The event queue and timers.
    pub scheduler: Rc<RefCell<Scheduler>>,
    /// HTTP listeners by port.
    pub listeners: Rc<RefCell<HashMap<u16, Listener>>>,
    /// Responses owed to clients.
    pub tracker: Arc<ResponseTracker>,
    /// Responses handed to the script and not yet closed by it. While there are some, the event
    /// loop collects garbage when idle, so a forgotten handle is answered promptly.
    pub open_responses: Rc<Cell<usize>>,
    /// WebSocket servers by port.
    pub ws_servers: websocket::WsServers,
    /// Every WebSocket connection handed to the script, to close them when it ends.
    pub ws_links: websocket::WsLinks,
    /// The sandbox root of the `fs` API and the running program's path in it.
    pub files: fs::Files,
    /// Set by `os.shutdown`/`os.reboot`: the script's end (or error) is then a normal exit.
    pub halt: Rc<Cell<bool>>,
    /// The listeners whose requests are streams (lua-http's and NodeMCU's servers), by listener
    /// id.
    pub stream_listeners: Rc<RefCell<HashMap<u64, Listener>>>,
    /// Set by NodeMCU's `node.restart` (with `halt`): the program is to be started again.
    pub restart: Rc<Cell<bool>>,
    /// The certificate TLS listeners present (`--tls-cert`, `--tls-key`), loaded at start.
    pub server_tls: Option<Arc<crate::tls::ServerTls>>,
}

impl Context {
    /// The certificate for a listener that asks for TLS, or the error to raise: none was given.
    pub fn tls_for_listener(&self) -> Result<Arc<crate::tls::ServerTls>, String> {
        self.server_tls.clone().ok_or_else(|| {
            if cfg!(feature = "tls") {
                "TLS needs a certificate: start ccserve with --tls-cert FILE --tls-key FILE".into()
            } else {
                "TLS is not in this build of ccserve (built without the `tls` feature)".into()
            }
        })
    }

    /// A listener's TLS from the ccserve extension `{tls = true}` (an options table, or nil):
    /// TLS only, with the certificate given on the command line.
    pub fn tls_option(
        &self,
        options: Option<&Value>,
        index: usize,
    ) -> args::NResult<Option<crate::tls::TlsListen>> {
        let tls = match options {
            None | Some(Value::Nil) => return Ok(None),
            Some(Value::Table(t)) => t.get::<Value>("tls")?,
            Some(_) => return Err(args::bad_arg(index, "options table expected")),
        };
        match tls {
            Value::Nil | Value::Boolean(false) => Ok(None),
            Value::Boolean(true) => Ok(Some(crate::tls::TlsListen {
                cert: self.tls_for_listener().map_err(args::Fail::Script)?,
                plain_too: false,
            })),
            _ => Err(args::bad_arg(index, "'tls' must be a boolean")),
        }
    }
}

/// The installed APIs: what the event loop needs to build event values.
pub struct Api {
    /// The natives the Lua halves are built from; other API families built on this environment
    /// (lua-http's WebSocket handles) reuse some.
    pub native: Table,
    /// The prelude's helpers (`ERR`, `ret`, `wrap`, `expect`, ...), for other Lua halves.
    pub support: Table,
    open_responses: Rc<Cell<usize>>,
    boot: Function,
    make_http_request: Function,
    make_client_handle: Function,
    websocket: websocket::WsApi,
}

/// Installs every API into `lua`'s globals.
pub fn install(lua: &Lua, ctx: &Context) -> mlua::Result<Api> {
    let native = lua.create_table()?;
    os::install(lua, &native, ctx)?;
    http::install(lua, &native, ctx)?;
    handles::install(lua, &native)?;
    websocket::install(lua, &native, ctx)?;
    fs::install(lua, &native, ctx)?;
    system::install(lua, &native, ctx)?;
    let support: Table = PRELUDE_LUA
        .compile(lua, "prelude.lua")?
        .call(args::error_sentinel())?;
    OS_LUA
        .compile(lua, "os.lua")?
        .call::<()>((native.clone(), support.clone()))?;
    TEXTUTILS_LUA
        .compile(lua, "textutils.lua")?
        .call::<()>((native.clone(), support.clone()))?;
    let fs_lua: Table = FS_LUA
        .compile(lua, "fs.lua")?
        .call((native.clone(), support.clone()))?;
    SYSTEM_LUA
        .compile(lua, "system.lua")?
        .call::<()>((native.clone(), support.clone()))?;
    PARALLEL_LUA.compile(lua, "parallel.lua")?.call::<()>(())?;
    let factories: Table = HTTP_LUA
        .compile(lua, "http.lua")?
        .call((native.clone(), support.clone()))?;
    let ws_factories: Table = WEBSOCKET_LUA
        .compile(lua, "websocket.lua")?
        .call((native.clone(), support.clone()))?;
    Ok(Api {
        native,
        support,
        websocket: websocket::WsApi::new(
            &ws_factories,
            ctx.ws_servers.clone(),
            ctx.ws_links.clone(),
        )?,
        open_responses: ctx.open_responses.clone(),
        boot: fs_lua.get("boot")?,
        make_http_request: factories.get("http_request")?,
        make_client_handle: factories.get("client")?,
    })
}

impl Api {
    /// What CraftOS does before it runs a program, once the runtime has set the `fs` root and the
    /// program's path: relative `require` paths start from the program's directory, and saved
    /// settings (`/.settings`) are loaded. A settings file that cannot be loaded is logged and
    /// skipped, as CraftOS skips it.
    pub fn boot(&self) -> mlua::Result<()> {
        if let Some(problem) = self.boot.call::<Option<String>>(())? {
            log::warn!("{problem}");
        }
        Ok(())
    }

    /// Turns a queued event into the values `os.pullEvent` returns.
    pub fn event_values(&self, lua: &Lua, ev: Queued) -> mlua::Result<MultiValue> {
        let s = |b: &[u8]| lua.create_string(b).map(Value::String);
        let mut out = Vec::new();
        match ev {
            Queued::Lua(values) => return Ok(MultiValue::from_vec(values)),
            Queued::Timer(id) => {
                out.push(s(b"timer")?);
                out.push(Value::Integer(id as mlua::Integer));
            }
            Queued::Native(Event::Terminate) => out.push(s(b"terminate")?),
            Queued::Native(Event::StreamReady(id)) => {
                out.push(s(STREAM_READY.as_bytes())?);
                out.push(args::int_value(id as i64));
            }
            Queued::Native(Event::ConnectionClosed(id)) => {
                out.push(s(CONNECTION_CLOSED.as_bytes())?);
                out.push(args::int_value(id as i64));
            }
            Queued::Native(Event::Custom { name, args }) => {
                out.push(s(name.as_bytes())?);
                for a in args {
                    out.push(match a {
                        EventValue::Nil => Value::Nil,
                        EventValue::Boolean(b) => Value::Boolean(b),
                        EventValue::Integer(i) => args::int_value(i),
                        EventValue::Number(n) => Value::Number(n),
                        EventValue::String(b) => s(&b)?,
                    });
                }
            }
            // A lua-http listener's request: a stream (`src/luahttp/`).
            Queued::Native(Event::HttpRequest(request)) if request.event != HTTP_REQUEST => {
                return crate::luahttp::server::event_values(lua, *request);
            }
            Queued::Native(Event::HttpRequest(request)) => {
                let port = request.port;
                let ud = lua.create_any_userdata(ServerExchange::new(
                    *request,
                    self.open_responses.clone(),
                ))?;
                // The factory returns the whole event: `"http_request", port, req, res`.
                return self.make_http_request.call((ud, port));
            }
            Queued::Native(Event::Ws(ev)) => return self.websocket.event_values(lua, *ev),
            Queued::Native(Event::HttpClient(outcome)) => {
                let name = outcome.event_name();
                out.push(s(name.as_bytes())?);
                out.push(s(outcome.url.as_bytes())?);
                match outcome.result {
                    Ok(response) => {
                        let reason = response.reason.clone();
                        let ud = lua.create_any_userdata(ClientHandle::new(response))?;
                        let handle: Table = self.make_client_handle.call(ud)?;
                        if name == "http_failure" {
                            out.push(s(&reason)?);
                        }
                        out.push(Value::Table(handle));
                    }
                    Err(message) => out.push(s(message.as_bytes())?),
                }
            }
        }
        Ok(MultiValue::from_vec(out))
    }
}
