//! The Lua halves of the APIs, embedded in the binary deflated (see `build.rs`), and inflated
//! when they are loaded. A Raspberry Pi build is about 95 KB smaller for it; inflating all of them
//! takes well under a millisecond.

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
}
