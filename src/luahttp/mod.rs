//! lua-http's server API (`../shared/seeds/003_*`): the modules a lua-http script `require`s,
//! built in. Each module's Lua half lives here as a `.lua` file beside the Rust half it needs
//! (`server.rs` and `server.lua`); all of them are registered in `package.preload`, so
//! `require "http.server"` finds them without any file on disk (a module is inflated and
//! compiled by its first `require`). They run in the CraftOS environment: its globals stay
//! available, and `cqueues.lua` runs lua-http's coroutines on the same event loop as everything
//! else.

pub mod server;
pub mod websocket;

use mlua::{Lua, MultiValue, Table};

use crate::embedded::EmbeddedLua;

use crate::craftos::{Api, Context};

/// The built-in modules: the name scripts `require`, and the source. Each chunk receives
/// `(native, support, craftos_native)` and returns the module (the pure-Lua ones, `http.headers`
/// and `http.util`, ignore them).
const MODULES: &[(&str, EmbeddedLua)] = &[
    ("http.version", embedded_lua!("luahttp/version.lua")),
    ("http.headers", embedded_lua!("luahttp/headers.lua")),
    ("http.util", embedded_lua!("luahttp/util.lua")),
    ("cqueues", embedded_lua!("luahttp/cqueues.lua")),
    ("cqueues.condition", embedded_lua!("luahttp/condition.lua")),
    ("cqueues.errno", embedded_lua!("luahttp/errno.lua")),
    ("http.server", embedded_lua!("luahttp/server.lua")),
    ("http.websocket", embedded_lua!("luahttp/websocket.lua")),
    ("http.request", embedded_lua!("luahttp/request.lua")),
];

/// Registers every module in `package.preload`, with the natives they need. Returns those
/// natives: the stream methods (`read`, `respond`, `data`, `room`, ...) serve NodeMCU's
/// `httpserver` too.
pub fn install(lua: &Lua, ctx: &Context, api: &Api) -> mlua::Result<Table> {
    let native = lua.create_table()?;
    server::install(lua, &native, ctx)?;
    websocket::install(lua, &native)?;
    native.set("stream_ready", crate::event::STREAM_READY)?;
    native.set("stream_event", server::STREAM_EVENT)?;
    native.set("connection_closed", crate::event::CONNECTION_CLOSED)?;
    native.set("websocket_event", crate::ws::STREAM_WEBSOCKET)?;
    let package: Table = lua.globals().get("package")?;
    let preload: Table = package.get("preload")?;
    // A module is inflated and compiled by its first `require`: a script that uses none of them
    // (a CraftOS or NodeMCU one) pays nothing for them at start or in memory.
    for &(name, source) in MODULES {
        let (native, support, craftos) = (native.clone(), api.support.clone(), api.native.clone());
        let loader = lua.create_function(move |lua, args: MultiValue| {
            let chunk = source.compile(lua, name)?;
            let mut all = MultiValue::from_vec(vec![
                mlua::Value::Table(native.clone()),
                mlua::Value::Table(support.clone()),
                mlua::Value::Table(craftos.clone()),
            ]);
            all.extend(args);
            chunk.call::<MultiValue>(all)
        })?;
        preload.set(name, loader)?;
    }
    Ok(native)
}
