//! [`Runtime`]: one Lua VM with the CraftOS APIs installed, running one script to completion.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::chunk::ChunkMode;
use mlua::thread::ThreadStatus;
use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Thread, Value};

use crate::config::Config;
use crate::craftos::{self, Api, Context};
use crate::error::Error;
use crate::event::{Event, EventSender};
use crate::event_loop::{keep_events_marker, Queued, Scheduler};
use crate::http::listener::ResponseTracker;

/// How long the runtime waits, after the script ends, for owed responses to be written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Least time between two idle-time garbage collections.
const GC_INTERVAL: Duration = Duration::from_millis(250);

/// A Lua VM with the CraftOS APIs, ready to run a script.
///
/// The runtime lives on the thread that created it (the Lua VM is not `Send`). Other threads talk
/// to the script through an [`EventSender`] from [`Runtime::sender`].
///
/// ```no_run
/// let mut rt = ccserve::Runtime::new(ccserve::Config::default())?;
/// rt.run_chunk("print('hello from Lua')", "hello", &[])?;
/// # Ok::<(), ccserve::Error>(())
/// ```
pub struct Runtime {
    lua: Lua,
    ctx: Context,
    api: Api,
    traceback: Function,
    /// NodeMCU's callback dispatcher, driven once the main chunk has returned (`src/nodemcu/`).
    after_main: Option<Function>,
    ran: bool,
    /// When the last idle-time collection ran (`None`: never).
    last_gc: Option<Instant>,
    /// Whether the script ran since that collection (only then can it have dropped a handle).
    ran_since_gc: bool,
}

impl Runtime {
    /// Creates a VM and installs the APIs.
    pub fn new(config: Config) -> Result<Runtime, Error> {
        let config = Arc::new(config);
        // SAFETY: `unsafe_new_with` is unsafe only because it allows the `debug` library, which
        // CraftOS-PC gives scripts (`debug.traceback` in error handlers is common). A script could
        // use it to tamper with mlua's internal metatables; scripts are trusted code here, as
        // README's Security section states, exactly as in CraftOS-PC. No C modules are loaded.
        let lua = unsafe {
            Lua::unsafe_new_with(StdLib::ALL_SAFE | StdLib::DEBUG, LuaOptions::default())
        };
        let server_tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                Some(crate::tls::ServerTls::load(cert, key).map_err(Error::Tls)?)
            }
            (None, None) => None,
            _ => {
                return Err(Error::Tls(
                    "a TLS certificate needs its key and a key its certificate: give both \
                         --tls-cert and --tls-key"
                        .into(),
                ))
            }
        };
        let (tx, rx) = crossbeam_channel::bounded(config.event_queue_capacity.max(1));
        let tracker = Arc::new(ResponseTracker::default());
        let sender = EventSender::new(tx, tracker.clone());
        let ctx = Context {
            scheduler: Rc::new(RefCell::new(Scheduler::new(
                rx,
                config.event_queue_capacity,
                sender.doorbell(),
                config.busy_poll,
            ))),
            config,
            sender,
            listeners: Rc::new(RefCell::new(HashMap::new())),
            tracker,
            open_responses: Rc::new(Cell::new(0)),
            ws_servers: Rc::new(RefCell::new(HashMap::new())),
            ws_links: Rc::new(RefCell::new(Vec::new())),
            files: crate::craftos::fs::Files::default(),
            halt: Rc::new(Cell::new(false)),
            stream_listeners: Rc::new(RefCell::new(HashMap::new())),
            restart: Rc::new(Cell::new(false)),
            server_tls,
        };
        let api = craftos::install(&lua, &ctx)?;
        let stream = crate::luahttp::install(&lua, &ctx, &api)?;
        let after_main = crate::nodemcu::install(&lua, &ctx, &api, &stream)?;
        let traceback: Function = lua
            .globals()
            .get::<mlua::Table>("debug")?
            .get("traceback")?;
        Ok(Runtime {
            lua,
            ctx,
            api,
            traceback,
            after_main,
            ran: false,
            last_gc: None,
            ran_since_gc: false,
        })
    }

    /// The Lua VM, to register extra functions or globals before running a script.
    pub fn lua(&self) -> &Lua {
        &self.lua
    }

    /// A sender for events into the script, usable from any thread.
    pub fn sender(&self) -> EventSender {
        self.ctx.sender.clone()
    }

    /// Registers a global Lua function implemented in Rust.
    pub fn register_function<F, A, R>(&self, name: &str, f: F) -> Result<(), Error>
    where
        F: Fn(&Lua, A) -> mlua::Result<R> + 'static,
        A: mlua::FromLuaMulti,
        R: mlua::IntoLuaMulti,
    {
        let func = self.lua.create_function(f)?;
        self.lua.globals().set(name, func)?;
        Ok(())
    }

    /// Runs the script at `path` with `args` (as `...` and `arg`) until it ends.
    ///
    /// As in CraftOS, a script under the `fs` root is named by its path there: errors read
    /// `/api.lua:11: ...` and `arg[0]` is `api.lua` (what `shell.getRunningProgram()` returns). A
    /// script outside the root keeps its host path in both.
    pub fn run_file(&mut self, path: impl AsRef<Path>, args: &[String]) -> Result<(), Error> {
        let path = path.as_ref();
        let source = std::fs::read(path).map_err(|source| Error::ReadScript {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let (chunk_name, arg0) = match self.set_root(dir, path) {
            Some(program) => (format!("@{program}"), program[1..].to_string()),
            None => {
                let host = path.to_string_lossy().into_owned();
                (format!("@{host}"), host)
            }
        };
        self.run_source(&source, &chunk_name, &arg0, args)
    }

    /// Runs Lua source code named `name` (used in error messages) with `args` until it ends.
    pub fn run_chunk(&mut self, source: &str, name: &str, args: &[String]) -> Result<(), Error> {
        self.set_root(PathBuf::from("."), Path::new(name));
        self.run_source(source.as_bytes(), &format!("@{name}"), name, args)
    }

    /// Decides the `fs` root (the configured one, else `default_root`) and the program's path in
    /// it: `/name` relative to the root when the script lies inside it (returned), else `/` and
    /// its file name (`None` is returned).
    fn set_root(&mut self, default_root: PathBuf, script: &Path) -> Option<String> {
        let root = self.ctx.config.root.clone().unwrap_or(default_root);
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        let script_abs = std::fs::canonicalize(script).unwrap_or_else(|_| script.to_path_buf());
        let (program, inside) = match script_abs.strip_prefix(&root) {
            Ok(rel) => (
                format!("/{}", rel.to_string_lossy().replace('\\', "/")),
                true,
            ),
            Err(_) => (
                format!(
                    "/{}",
                    script
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
                false,
            ),
        };
        self.ctx.files.set(root, program.clone());
        inside.then_some(program)
    }

    /// Loads and runs the main chunk: `chunk_name` as Lua's chunk name (`@` and a path),
    /// `arg0` as `arg[0]`.
    fn run_source(
        &mut self,
        source: &[u8],
        chunk_name: &str,
        arg0: &str,
        args: &[String],
    ) -> Result<(), Error> {
        if self.ran {
            return Err(Error::AlreadyRan);
        }
        self.ran = true;
        self.api.boot()?;
        let func = self
            .lua
            .load(skip_shebang(source).as_ref())
            .set_name(chunk_name)
            .set_mode(ChunkMode::Text)
            .into_function()
            .map_err(|e| Error::Syntax(error_message(&e)))?;
        let arg = self.lua.create_table()?;
        arg.raw_set(0, arg0)?;
        let mut lua_args = MultiValue::new();
        for (i, a) in args.iter().enumerate() {
            arg.raw_set(i + 1, a.as_str())?;
            lua_args.push_back(Value::String(self.lua.create_string(a)?));
        }
        self.lua.globals().set("arg", arg)?;
        let co = self.lua.create_thread(func)?;
        let mut result = self.drive(&co, lua_args);
        // A NodeMCU program's callbacks outlive its main chunk: the dispatcher runs them until no
        // server or timer is left.
        if let (Ok(()), Some(dispatch)) = (&result, self.after_main.take()) {
            if !self.ctx.halt.get() {
                let co = self.lua.create_thread(dispatch)?;
                result = self.drive(&co, MultiValue::new());
            }
        }
        self.shutdown();
        result
    }

    /// Whether the script asked to be started again (NodeMCU's `node.restart()`): it has ended
    /// as for `os.shutdown`, and the `ccserve` command runs it anew. An embedder may do the same
    /// or not.
    pub fn restart_requested(&self) -> bool {
        self.ctx.restart.get()
    }

    /// Resumes the main coroutine with each event its filter accepts, until it ends.
    fn drive(&mut self, co: &Thread, mut resume: MultiValue) -> Result<(), Error> {
        loop {
            let yielded = match co.resume::<MultiValue>(resume) {
                // os.shutdown/os.reboot: end normally at its yield or error.
                _ if self.ctx.halt.get() => return Ok(()),
                Ok(v) => v,
                Err(e) => return Err(self.script_error(co, &e)),
            };
            self.ran_since_gc = true;
            if co.status() != ThreadStatus::Resumable {
                return Ok(());
            }
            let filter = match yielded.front() {
                Some(Value::String(s)) => Some(s.to_string_lossy()),
                _ => None,
            };
            let keep = filter.is_some() && yielded.get(1) == Some(&keep_events_marker());
            drop(yielded);
            resume = loop {
                let wake = self.collect_forgotten_handles();
                let mut scheduler = self.ctx.scheduler.borrow_mut();
                let next = match (&filter, keep) {
                    (Some(name), true) => scheduler.take_named(name, wake),
                    _ => scheduler.next_until(wake),
                };
                drop(scheduler);
                let Some(ev) = next else {
                    continue; // the collection is due
                };
                let accepted = match &filter {
                    None => true,
                    Some(f) => ev.is_named(f) || ev.is_named("terminate"),
                };
                if accepted {
                    break self.api.event_values(&self.lua, ev)?;
                }
                discard(ev);
            };
        }
    }

    /// Before the loop waits for an event: if the script holds responses it has not closed and
    /// has run since the last collection, collects garbage, so handles it dropped are answered
    /// `500` now rather than at the response timeout. Collections are at least [`GC_INTERVAL`]
    /// apart; one that is not due yet is returned as the time the wait must end to run it.
    fn collect_forgotten_handles(&mut self) -> Option<Instant> {
        if self.ctx.open_responses.get() == 0 || !self.ran_since_gc {
            return None;
        }
        if !self.ctx.scheduler.borrow_mut().is_idle() {
            return None;
        }
        let now = Instant::now();
        if let Some(due) = self.last_gc.map(|last| last + GC_INTERVAL) {
            if now < due {
                return Some(due);
            }
        }
        self.last_gc = Some(now);
        self.ran_since_gc = false;
        if let Err(e) = self.lua.gc_collect() {
            log::warn!("garbage collection failed: {e}");
        }
        None
    }

    fn script_error(&self, co: &Thread, e: &mlua::Error) -> Error {
        let full = error_message(e);
        // mlua appends the failing coroutine's traceback to the message; keep them apart.
        let (message, traceback) = match full.split_once("\nstack traceback:") {
            Some((m, t)) => (m.to_string(), format!("stack traceback:{t}")),
            None => {
                let t = self
                    .traceback
                    .call::<String>(co.clone())
                    .unwrap_or_default();
                (full, t)
            }
        };
        if message == "Terminated" {
            return Error::Terminated;
        }
        let message = match crate::nodemcu::explain(&message, self.ctx.config.nodemcu) {
            Some(hint) => format!("{message} {hint}"),
            None => message,
        };
        Error::Script { message, traceback }
    }

    /// Closes every listener, answers every request still owed, and waits briefly for those
    /// answers to be written.
    fn shutdown(&mut self) {
        let listeners: Vec<_> = self.ctx.listeners.borrow_mut().drain().collect();
        drop(listeners);
        let listeners: Vec<_> = self.ctx.stream_listeners.borrow_mut().drain().collect();
        drop(listeners);
        let ws_servers: Vec<_> = self.ctx.ws_servers.borrow_mut().drain().collect();
        drop(ws_servers);
        // Close the WebSocket connections still open (their writers send Close 1001 and end).
        for link in self.ctx.ws_links.borrow_mut().drain(..) {
            if let Some(control) = link.upgrade() {
                control.close(1001, "");
            }
        }
        self.ctx.scheduler.borrow_mut().close();
        let owed = self.ctx.tracker.wait_idle(DRAIN_TIMEOUT);
        if owed > 0 {
            log::warn!("{owed} responses were still being written at exit");
        }
    }
}

/// An event the script's filter rejected: CraftOS-PC drops it. A request in it is answered `503`
/// at once instead of being left for the response timeout.
fn discard(ev: Queued) {
    if let Queued::Native(Event::HttpRequest(mut request)) = ev {
        log::debug!(
            "http_request on port {} skipped by the script's event filter; answered 503",
            request.port
        );
        request.guard.set_status_on_drop(503);
    }
}

/// As the `lua` interpreter does, a first line starting with `#` (`#!/usr/bin/env lua`) is not
/// Lua: it becomes a comment, so line numbers stay right (`loadfile` in `craftos/fs.lua` does the
/// same for files the script loads).
fn skip_shebang(source: &[u8]) -> Cow<'_, [u8]> {
    if source.first() == Some(&b'#') {
        Cow::Owned([b"--".as_slice(), source].concat())
    } else {
        Cow::Borrowed(source)
    }
}

/// The message of a Lua error without mlua's decorations.
fn error_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => m.clone(),
        mlua::Error::CallbackError { cause, .. } => error_message(cause),
        other => other.to_string(),
    }
}
