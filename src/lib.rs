//! ccserve runs Lua server scripts outside the environments they were written for: CraftOS-PC's
//! HTTP server API (`http.listen`, `http.addListener`, `http_request` events), lua-http's
//! `http.server`, and NodeMCU's `httpserver` (with `--nodemcu`, [`Config::nodemcu`]). One small
//! binary, no async runtime; HTTPS and WSS with the `tls` feature.
//!
//! # Shape
//! One thread owns the Lua VM and runs the script as a coroutine, CraftOS style
//! (`src/event_loop.rs`). Every other thread (one per HTTP listener, one per connection, one per
//! outgoing request) talks to it only through a bounded channel of events. A connection idle
//! between requests parks with the Lua thread, which reads its next small request itself
//! (`src/lane.rs`), and the Lua thread puts a small finished response or WebSocket frame on an
//! idle socket with one non-blocking send (`src/http/direct.rs`), so the common request wakes no
//! other thread. Each API family lives in its own module (`craftos`, `luahttp`, `nodemcu`) over
//! the engines (`http`, `ws`); TLS sits beside them (`src/tls.rs`).
//!
//! # Embedding
//! ```no_run
//! use ccserve::{Config, EventValue, Runtime};
//!
//! let mut rt = Runtime::new(Config::default())?;
//! rt.register_function("greet", |_, name: String| Ok(format!("hello, {name}")))?;
//! let events = rt.sender(); // clone it into any thread
//! std::thread::spawn(move || {
//!     let _ = events.queue_event("tick", vec![EventValue::Integer(1)]);
//! });
//! rt.run_chunk("local _, n = os.pullEvent('tick') print(greet('lua'), n)", "demo", &[])?;
//! # Ok::<(), ccserve::Error>(())
//! ```

#![warn(missing_docs)]

/// The embedded copy of a Lua source under `src/`, as an [`embedded::EmbeddedLua`] (`build.rs`
/// shrinks it, with no comments or indentation and the same line numbers, and deflates it).
macro_rules! embedded_lua {
    ($path:literal) => {
        crate::embedded::EmbeddedLua(include_bytes!(concat!(
            env!("OUT_DIR"),
            "/lua/",
            $path,
            ".z"
        )))
    };
}

mod busy_poll;
mod config;
mod craftos;
mod embedded;
mod error;
mod event;
mod event_loop;
mod http;
mod lane;
mod luahttp;
mod net;
mod nodemcu;
mod poller;
mod runtime;
mod sched;
mod socket;
#[cfg(feature = "tls")]
mod tls;
#[cfg(not(feature = "tls"))]
#[path = "tls_off.rs"]
mod tls;
mod workers;
mod ws;

pub use config::Config;
pub use error::{Error, RuntimeGone};
pub use event::{EventSender, EventValue};
pub use runtime::Runtime;

/// The mlua crate ccserve is built on, for embedders registering their own functions.
pub use mlua;

#[cfg(test)]
#[path = "../build/lua_min.rs"]
mod lua_min;

#[cfg(test)]
mod lua_min_tests {
    use super::lua_min::minify;

    #[test]
    fn comments_and_indentation_go_and_lines_stay() {
        let src = "-- header\nlocal a = 1 -- trailing\n    if a then\n\t\treturn a  \n    end\n";
        assert_eq!(minify(src), "\nlocal a = 1\nif a then\nreturn a\nend\n");
    }

    #[test]
    fn long_comments_keep_their_newlines() {
        let src = "a = 1 --[[ one\ntwo\nthree ]] b = 2\n--[==[ x ]] y ]==]c = 3\n";
        assert_eq!(minify(src), "a = 1 \n\n b = 2\n c = 3\n");
    }

    #[test]
    fn strings_are_copied_byte_for_byte() {
        let src = concat!(
            "s = \"-- not a comment\"  -- a comment\n",
            "t = 'it\\'s -- also not'\n",
            "u = [[\n    -- kept\n  indented ]]\n",
            "v = [=[ ]] -- ]=]\n",
            "w = \"a\\\n    b\"\n",
            "x = t[ [[k]] ] .. a[b[1]]\n",
        );
        let want = concat!(
            "s = \"-- not a comment\"\n",
            "t = 'it\\'s -- also not'\n",
            "u = [[\n    -- kept\n  indented ]]\n",
            "v = [=[ ]] -- ]=]\n",
            "w = \"a\\\n    b\"\n",
            "x = t[ [[k]] ] .. a[b[1]]\n",
        );
        assert_eq!(minify(src), want);
    }

    #[test]
    fn every_embedded_source_keeps_its_lines_and_loads() {
        let lua = mlua::Lua::new();
        for dir in ["src/craftos", "src/luahttp", "src/nodemcu"] {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "lua") {
                    continue;
                }
                let source = std::fs::read_to_string(&path).unwrap();
                let small = minify(&source);
                assert_eq!(
                    small.lines().count(),
                    source.lines().count(),
                    "{}",
                    path.display()
                );
                assert!(small.len() < source.len(), "{}", path.display());
                if let Err(e) = lua.load(small.as_str()).into_function() {
                    panic!("{} no longer compiles once shrunk: {e}", path.display());
                }
            }
        }
    }
}
