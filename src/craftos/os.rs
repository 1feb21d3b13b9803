//! The native half of the `os` API: events, timers and clocks. The Lua half (`pullEvent`,
//! `pullEventRaw`, `sleep`) is in `os.lua` beside it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mlua::{Lua, Table, Value};

use super::args::{self, bad_type, native, nothing, values, Fail, NResult};
use super::Context;

/// Length of an in-game day in real milliseconds (20 minutes, as in Minecraft).
const DAY_MS: f64 = 20.0 * 60.0 * 1000.0;

/// Fills `native` with the `os` functions.
pub fn install(lua: &Lua, native_tbl: &Table, ctx: &Context) -> mlua::Result<()> {
    let sched = ctx.scheduler.clone();
    let max_queued = ctx.config.max_queued_events;
    native_tbl.set(
        "queueEvent",
        native(lua, move |_, args| {
            if !matches!(args.first(), Some(Value::String(_))) {
                return Err(bad_type(args, 1, "string"));
            }
            sched
                .borrow_mut()
                .queue_lua(args.to_vec(), max_queued)
                .map_err(|_| {
                    Fail::Script(format!(
                        "Too many events queued ({max_queued}); pull events before queueing more"
                    ))
                })?;
            Ok(nothing())
        })?,
    )?;

    let sched = ctx.scheduler.clone();
    native_tbl.set(
        "startTimer",
        native(lua, move |lua, args| {
            let secs = args::number(lua, args, 1)?;
            if secs.is_nan() {
                return Err(args::bad_arg(1, "number expected, got nan"));
            }
            // CraftOS-PC clamps to 1 ms; an infinite timer never fires.
            let after = Duration::try_from_secs_f64(secs.max(0.001))
                .unwrap_or(Duration::from_secs(u32::MAX as u64));
            let id = sched.borrow_mut().start_timer(after);
            Ok(values(vec![Value::Integer(id as mlua::Integer)]))
        })?,
    )?;

    let sched = ctx.scheduler.clone();
    native_tbl.set(
        "cancelTimer",
        native(lua, move |lua, args| {
            let id = args::integer(lua, args, 1)?;
            if id > 0 {
                sched.borrow_mut().cancel_timer(id as u64);
            }
            Ok(nothing())
        })?,
    )?;

    let started = ctx.scheduler.borrow().started();
    native_tbl.set(
        "clock",
        native(lua, move |_, _| {
            let ms = started.elapsed().as_millis() as f64;
            Ok(values(vec![Value::Number(ms / 1000.0)]))
        })?,
    )?;

    native_tbl.set(
        "epoch",
        native(lua, move |lua, args| {
            let ms = match clock_kind(lua, args)?.as_str() {
                "ingame" => ingame_ms(started.elapsed()),
                "utc" | "local" => unix_ms(),
                "nano" => {
                    let ns = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0);
                    (ns & ((1u128 << 53) - 1)) as f64
                }
                _ => return Err(Fail::Script("Unsupported operation".into())),
            };
            Ok(values(vec![number_value(ms)]))
        })?,
    )?;

    native_tbl.set(
        "time",
        native(lua, move |lua, args| {
            let v = match clock_kind(lua, args)?.as_str() {
                "ingame" => {
                    let ms = ingame_ms(started.elapsed());
                    (ms % 86_400_000.0) / 3_600_000.0
                }
                "utc" | "local" => (unix_ms() / 1000.0).floor(),
                _ => return Err(Fail::Script("Unsupported operation".into())),
            };
            Ok(values(vec![number_value(v)]))
        })?,
    )?;

    native_tbl.set(
        "day",
        native(lua, move |lua, args| {
            let v = match clock_kind(lua, args)?.as_str() {
                "ingame" => (ingame_ms(started.elapsed()) / 86_400_000.0).floor(),
                "utc" | "local" => (unix_ms() / 86_400_000.0).floor(),
                _ => return Err(Fail::Script("Unsupported operation".into())),
            };
            Ok(values(vec![number_value(v)]))
        })?,
    )?;
    Ok(())
}

/// The optional clock name of `os.epoch`/`os.time`/`os.day` (case-insensitive, default
/// `ingame`).
fn clock_kind(lua: &Lua, args: &[Value]) -> NResult<String> {
    Ok(match args::opt_bytes(lua, args, 1)? {
        None => "ingame".into(),
        Some(b) => String::from_utf8_lossy(&b).to_ascii_lowercase(),
    })
}

/// In-game milliseconds: 72 in-game ms per real ms, starting at 06:00 on day 1, as CraftOS-PC.
fn ingame_ms(elapsed: Duration) -> f64 {
    let real = elapsed.as_millis() as f64;
    let day_ms = 86_400_000.0;
    (real * day_ms / DAY_MS + 6.0 * 3_600_000.0 + day_ms).floor()
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as f64)
        .unwrap_or(0.0)
}

/// Whole numbers as integers (so they print without `.0` under Lua 5.4).
fn number_value(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        args::int_value(v as i64)
    } else {
        Value::Number(v)
    }
}
