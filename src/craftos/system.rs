//! The native half of the CraftOS system APIs: computer id and label, `os.version`, `_HOST`,
//! `os.shutdown`/`os.reboot`, reading stdin. The Lua half (`print`, `write`, `printError`, `read`,
//! `peripheral`, `shell`, `bit`, compatibility pieces) is in `system.lua` beside it.

use std::cell::{Cell, RefCell};
use std::io::BufRead;
use std::rc::Rc;

use crossbeam_channel::Sender;
use mlua::{Lua, Table, Value};

use super::args::{self, bad_type, native, nothing, values, NResult};
use super::Context;
use crate::event::{EventSender, EventValue};

/// The CraftOS-PC release ccserve follows.
pub const CRAFTOS_PC_VERSION: &str = "2.8.3";

/// The ComputerCraft version CraftOS-PC 2.8.3 reports in `_HOST`.
const COMPUTERCRAFT_VERSION: &str = "1.112.0";

/// The event a line read from stdin arrives in: `(STDIN_EVENT, request id, line or nil)`.
pub const STDIN_EVENT: &str = "ccserve_stdin";

/// `_HOST`: starts like CraftOS-PC's (`ComputerCraft 1.112.0 (CraftOS-PC v2.8.3)`), so scripts
/// that parse the ComputerCraft version or look for `CraftOS-PC` keep working, and names ccserve.
pub fn host() -> String {
    format!(
        "ComputerCraft {COMPUTERCRAFT_VERSION} (ccserve {}, CraftOS-PC v{CRAFTOS_PC_VERSION} compatible)",
        env!("CARGO_PKG_VERSION")
    )
}

/// Fills `native` with the system functions.
pub fn install(lua: &Lua, native_tbl: &Table, ctx: &Context) -> mlua::Result<()> {
    native_tbl.set("host", host())?;
    native_tbl.set("stdinEvent", STDIN_EVENT)?;

    let id = ctx.config.computer_id;
    native_tbl.set(
        "getComputerID",
        native(lua, move |_, _| {
            Ok(values(vec![args::int_value(i64::from(id))]))
        })?,
    )?;

    let label: Rc<RefCell<Vec<u8>>> = Rc::new(RefCell::new(
        ctx.config
            .computer_label
            .clone()
            .unwrap_or_default()
            .into_bytes(),
    ));
    let current = label.clone();
    native_tbl.set(
        "getComputerLabel",
        native(lua, move |lua, _| {
            // CraftOS-PC returns no value at all (not even nil) without a label.
            let label = current.borrow();
            if label.is_empty() {
                return Ok(nothing());
            }
            Ok(values(vec![Value::String(lua.create_string(&*label)?)]))
        })?,
    )?;
    native_tbl.set(
        "setComputerLabel",
        native(lua, move |lua, args| {
            let new = match args::opt_bytes(lua, args, 1) {
                Ok(v) => v.unwrap_or_default(),
                Err(_) => return Err(bad_type(args, 1, "string")),
            };
            *label.borrow_mut() = new;
            Ok(nothing())
        })?,
    )?;

    let halt = ctx.halt.clone();
    native_tbl.set(
        "halt",
        native(lua, move |_, _| {
            halt.set(true);
            Ok(nothing())
        })?,
    )?;

    let files = ctx.files.clone();
    native_tbl.set(
        "program",
        native(lua, move |lua, _| {
            Ok(values(vec![Value::String(
                lua.create_string(files.program())?,
            )]))
        })?,
    )?;

    let stdin = StdinReader::new(ctx.sender.clone());
    native_tbl.set("requestLine", native(lua, move |_, _| stdin.request())?)?;
    Ok(())
}

/// Reads stdin on a thread of its own, one line per request, so `read()` waits for an event
/// rather than blocking the event loop (listeners keep being served meanwhile).
struct StdinReader {
    sender: EventSender,
    requests: RefCell<Option<Sender<i64>>>,
    next_id: Cell<i64>,
}

impl StdinReader {
    fn new(sender: EventSender) -> StdinReader {
        StdinReader {
            sender,
            requests: RefCell::new(None),
            next_id: Cell::new(1),
        }
    }

    /// Asks for the next line; returns the id its `STDIN_EVENT` will carry.
    fn request(&self) -> NResult<mlua::MultiValue> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let mut requests = self.requests.borrow_mut();
        let tx = requests.get_or_insert_with(|| spawn_reader(self.sender.clone()));
        if tx.send(id).is_err() {
            // The reader thread could not start; answer as at end of input.
            let _ = self
                .sender
                .queue_event(STDIN_EVENT, vec![EventValue::Integer(id), EventValue::Nil]);
        }
        Ok(values(vec![args::int_value(id)]))
    }
}

/// Starts the thread that answers line requests; returns where to send them.
fn spawn_reader(sender: EventSender) -> Sender<i64> {
    let (tx, rx) = crossbeam_channel::unbounded::<i64>();
    let started = std::thread::Builder::new()
        .name("ccserve-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut at_eof = false;
            for id in rx {
                let mut line = Vec::new();
                let got = if at_eof {
                    None
                } else {
                    match stdin.lock().read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => {
                            at_eof = true;
                            None
                        }
                        Ok(_) => {
                            if line.last() == Some(&b'\n') {
                                line.pop();
                                if line.last() == Some(&b'\r') {
                                    line.pop();
                                }
                            }
                            Some(line)
                        }
                    }
                };
                let value = got.map_or(EventValue::Nil, EventValue::String);
                if sender
                    .queue_event(STDIN_EVENT, vec![EventValue::Integer(id), value])
                    .is_err()
                {
                    break;
                }
            }
        });
    if let Err(e) = started {
        log::warn!("cannot start the stdin reader: {e}");
        // Dropping the receiver makes every request fail, which reads as end of input.
        return crossbeam_channel::bounded(0).0;
    }
    tx
}
