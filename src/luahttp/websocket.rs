//! The native half of `http.websocket` (`websocket.lua` beside it): the accept key of the
//! handshake, and frames and closes on a connection handed over by a stream (its reader and
//! writer threads are the ones `src/ws/` runs for every WebSocket).

use mlua::{Lua, Table, Value};

use crate::craftos::args::{self, native, nothing, values, Fail};
use crate::craftos::websocket::ConnHandle;
use crate::ws::connection::SendError;

/// Runs `f` on the connection handle given first.
fn with_conn<R>(
    args: &[Value],
    f: impl FnOnce(&ConnHandle) -> args::NResult<R>,
) -> args::NResult<R> {
    match args.first() {
        Some(Value::UserData(ud)) => f(&*ud.borrow::<ConnHandle>()?),
        _ => Err(Fail::Script(
            "websocket method called without its connection".into(),
        )),
    }
}

/// Fills `native` with the functions `websocket.lua` uses.
pub fn install(lua: &Lua, native_tbl: &Table) -> mlua::Result<()> {
    // accept_key(key) -> the Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key.
    native_tbl.set(
        "ws_accept_key",
        native(lua, |lua, args| {
            let key = args::string(lua, args, 1)?;
            let accept = crate::ws::handshake::accept_key(key.trim_ascii());
            Ok(values(vec![Value::String(lua.create_string(accept)?)]))
        })?,
    )?;
    // ws_frame(conn, opcode, data) -> true | false, "EMSGSIZE" | "EPIPE": opcode 1 text, 2
    // binary, 9 ping, 10 pong.
    native_tbl.set(
        "ws_frame",
        native(lua, |lua, args| {
            let opcode = args::integer(lua, args, 2)?;
            let data = args::bytes(lua, args, 3)?;
            with_conn(args, |h| {
                let control = h.control();
                let sent = match opcode {
                    1 | 2 => control.send(data, opcode == 2),
                    9 | 10 => control.control_frame(opcode == 9, data),
                    _ => return Err(args::bad_arg(2, "opcode must be 1, 2, 9 or 10")),
                };
                Ok(match sent {
                    Ok(()) => values(vec![Value::Boolean(true)]),
                    Err(e) => values(vec![
                        Value::Boolean(false),
                        Value::String(lua.create_string(match e {
                            SendError::TooLarge => "EMSGSIZE",
                            SendError::Closed => "EPIPE",
                        })?),
                    ]),
                })
            })
        })?,
    )?;
    // ws_close(conn, code, reason): sends a Close frame (once); the connection then ends.
    native_tbl.set(
        "ws_close",
        native(lua, |lua, args| {
            let code = args::integer(lua, args, 2)?;
            let reason = args::opt_bytes(lua, args, 3)?.unwrap_or_default();
            let code =
                u16::try_from(code).map_err(|_| args::bad_arg(2, "close code out of range"))?;
            with_conn(args, |h| {
                h.control().close(code, &String::from_utf8_lossy(&reason));
                Ok(nothing())
            })
        })?,
    )?;
    Ok(())
}
