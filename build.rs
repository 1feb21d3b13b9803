//! Embeds the Lua halves of the APIs (`src/**/*.lua`) shrunk by `build/lua_min.rs` (comments and
//! indentation go, line numbers stay) and then deflated (140 KB of Lua take 43 KB of the binary).
//! The deflated copies land in `$OUT_DIR/lua/<path under src>.z`, where
//! [`embedded_lua!`](src/lib.rs) finds them; `src/embedded.rs` inflates them when they are loaded.

#[path = "build/lua_min.rs"]
mod lua_min;

use std::path::Path;

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=build/lua_min.rs");
    for dir in ["craftos", "luahttp", "nodemcu"] {
        let src = Path::new("src").join(dir);
        println!("cargo:rerun-if-changed={}", src.display());
        let dest = Path::new(&out_dir).join("lua").join(dir);
        std::fs::create_dir_all(&dest).expect("create the embedded Lua folder in OUT_DIR");
        let entries = std::fs::read_dir(&src).expect("read the Lua sources");
        for entry in entries {
            let path = entry.expect("list the Lua sources").path();
            if path.extension().is_some_and(|e| e == "lua") {
                println!("cargo:rerun-if-changed={}", path.display());
                let source = std::fs::read_to_string(&path).expect("read a Lua source");
                let name = path.file_name().expect("a file name");
                let shrunk = lua_min::minify(&source);
                let mut deflated = name.to_owned();
                deflated.push(".z");
                std::fs::write(
                    dest.join(deflated),
                    miniz_oxide::deflate::compress_to_vec(shrunk.as_bytes(), 10),
                )
                .expect("write the deflated Lua source");
            }
        }
    }
}
