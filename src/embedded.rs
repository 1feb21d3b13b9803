//! The Lua halves of the APIs, embedded in the binary deflated (see `build.rs`), and inflated
//! when they are loaded: 140 KB of Lua take 43 KB of the binary. Inflating the
//! CraftOS and lua-http halves (100 KB) takes 3.4 million instructions (callgrind), a small
//! fraction of compiling them.

/// One deflated Lua source (made by [`embedded_lua!`](crate)).
#[derive(Clone, Copy)]
pub struct EmbeddedLua(pub &'static [u8]);

impl EmbeddedLua {
    /// The Lua source, inflated.
    pub fn source(self) -> mlua::Result<Vec<u8>> {
        miniz_oxide::inflate::decompress_to_vec(self.0).map_err(|e| {
            mlua::Error::runtime(format!(
                "ccserve's embedded Lua source is corrupt ({:?}): rebuild ccserve",
                e.status
            ))
        })
    }

    /// The source compiled as a chunk named `=ccserve/<name>` (the name errors and tracebacks
    /// show).
    pub fn compile(self, lua: &mlua::Lua, name: &str) -> mlua::Result<mlua::Function> {
        lua.load(self.source()?)
            .set_name(format!("=ccserve/{name}"))
            .into_function()
    }
}
