//! ccserve runs Lua scripts written against the CraftOS-PC HTTP server API (`http.listen`,
//! `http.addListener`, `http_request` events) outside the emulator: one small binary, no async
//! runtime.
//!
//! # Shape
//! One thread owns the Lua VM and runs the script as a coroutine, CraftOS style
//! (`src/event_loop.rs`). Every other thread (one per HTTP listener, one per
//! connection, one per outgoing request) talks to it only through a bounded channel of events.
//! Sockets never touch the Lua thread.
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

mod config;
mod craftos;
mod error;
mod event;
mod event_loop;
mod http;
mod luahttp;
mod net;
mod runtime;
mod sched;
mod workers;
mod ws;

pub use config::Config;
pub use error::{Error, RuntimeGone};
pub use event::{EventSender, EventValue};
pub use runtime::Runtime;

/// The mlua crate ccserve is built on, for embedders registering their own functions.
pub use mlua;
