//! lua-http's server API (`../shared/seeds/003_*`): the modules a lua-http script `require`s,
//! built in. Each module's Lua half lives here as a `.lua` file beside the Rust half it needs; all
//! of them are registered in `package.preload`, so `require "http.server"` finds them without any
//! file on disk.

use mlua::{Lua, Table};

/// The built-in modules: the name scripts `require`, and the source.
const MODULES: &[(&str, &str)] = &[("http.version", include_str!("version.lua"))];

/// Registers every module in `package.preload`.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let package: Table = lua.globals().get("package")?;
    let preload: Table = package.get("preload")?;
    for (name, source) in MODULES {
        let loader = lua
            .load(*source)
            .set_name(format!("=ccserve/{name}"))
            .into_function()?;
        preload.set(*name, loader)?;
    }
    Ok(())
}
