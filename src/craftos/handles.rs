//! The Lua-facing request, response and client-response handles.
//!
//! A handle is a plain Lua table of closures (built in `http.lua`, so scripts can add fields,
//! replace methods and copy it with `pairs`). Each closure calls one of the native functions here
//! with the handle's userdata: a [`ServerExchange`] for `http_request`'s `req`/`res` pair, a
//! [`ClientHandle`] for `http.get`'s result.

use std::cell::Cell;
use std::rc::Rc;

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::args::{self, closed_file, native, nothing, values, Fail, NResult};
use crate::event::IncomingRequest;
use crate::http::client::ClientResponse;
use crate::http::exchange::{Closed, PushError, Room};
use crate::http::response::{valid_header_name, valid_header_value, Response};

/// The unread part of a body, with file-handle style reads.
#[derive(Debug, Default)]
pub struct BodyCursor {
    data: Vec<u8>,
    pos: usize,
}

impl BodyCursor {
    fn new(data: Vec<u8>) -> BodyCursor {
        BodyCursor { data, pos: 0 }
    }

    /// `read([n])`: `n` bytes (one if absent), `nil` at the end.
    fn read(&mut self, n: Option<i64>) -> NResult<Option<&[u8]>> {
        let n = match n {
            Some(n) if n < 0 => {
                return Err(Fail::Script(
                    "Cannot read a negative number of bytes".into(),
                ))
            }
            Some(n) => n as usize,
            None => 1,
        };
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let end = self.pos + n.min(self.data.len() - self.pos);
        let start = self.pos;
        self.pos = end;
        Ok(Some(&self.data[start..end]))
    }

    /// `readLine([withTrailing])`: up to the next `\n` (kept only with `withTrailing`); a `\r`
    /// before it is data and is kept. `nil` at the end.
    fn read_line(&mut self, with_trailing: bool) -> Option<&[u8]> {
        if self.pos >= self.data.len() {
            return None;
        }
        let start = self.pos;
        let rest = &self.data[start..];
        let (len, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) if with_trailing => (i + 1, start + i + 1),
            Some(i) => (i, start + i + 1),
            None => (rest.len(), self.data.len()),
        };
        self.pos = next;
        Some(&self.data[start..start + len])
    }

    /// `readAll()`: the rest, `""` at the end.
    fn read_all(&mut self) -> &[u8] {
        let start = self.pos;
        self.pos = self.data.len();
        &self.data[start..]
    }
}

/// The userdata behind an `http_request` handle pair.
pub struct ServerExchange {
    request: IncomingRequest,
    body: BodyCursor,
    /// Counts responses delivered to the script and not yet closed by it (see
    /// [`Context::open_responses`](super::Context)); this one is counted until it is closed or
    /// collected.
    open_responses: Option<Rc<Cell<usize>>>,
}

impl ServerExchange {
    /// Wraps a request that arrived, counting it in `open_responses` until it is closed.
    pub fn new(mut request: IncomingRequest, open_responses: Rc<Cell<usize>>) -> ServerExchange {
        let body = BodyCursor::new(std::mem::take(&mut request.body));
        request.guard.exchange().mark_delivered();
        open_responses.set(open_responses.get() + 1);
        ServerExchange {
            request,
            body,
            open_responses: Some(open_responses),
        }
    }

    fn uncount(&mut self) {
        if let Some(count) = self.open_responses.take() {
            count.set(count.get() - 1);
        }
    }

    /// Request methods fail once the response is closed, as in CraftOS-PC (they share a flag).
    fn open(&mut self) -> NResult<&mut Self> {
        if self.request.guard.exchange().is_closed() {
            return Err(closed_file());
        }
        Ok(self)
    }
}

impl Drop for ServerExchange {
    fn drop(&mut self) {
        self.uncount();
    }
}

/// The userdata behind an `http.get`/`http.request` response handle.
pub struct ClientHandle {
    response: ClientResponse,
    body: BodyCursor,
    closed: bool,
}

impl ClientHandle {
    /// Wraps a received response.
    pub fn new(mut response: ClientResponse) -> ClientHandle {
        let body = BodyCursor::new(std::mem::take(&mut response.body));
        ClientHandle {
            response,
            body,
            closed: false,
        }
    }

    fn open(&mut self) -> NResult<&mut Self> {
        if self.closed {
            return Err(closed_file());
        }
        Ok(self)
    }
}

/// Something with a readable body.
trait Readable: 'static {
    fn cursor(&mut self) -> NResult<&mut BodyCursor>;
}

impl Readable for ServerExchange {
    fn cursor(&mut self) -> NResult<&mut BodyCursor> {
        Ok(&mut self.open()?.body)
    }
}

impl Readable for ClientHandle {
    fn cursor(&mut self) -> NResult<&mut BodyCursor> {
        Ok(&mut self.open()?.body)
    }
}

/// A handle method: `f` gets the handle's data (type `T`) and the script's arguments.
///
/// The handle's closure (in `http.lua`) passes the handle's userdata first, then whatever the
/// script passed. A leading table among those is the handle itself (`res:write(x)`, or a copy of
/// the handle) and is skipped, so `res.write(x)` and `res:write(x)` both work: no method takes a
/// table.
fn method<T: 'static>(
    lua: &Lua,
    f: impl Fn(&Lua, &mut T, &[Value]) -> NResult<MultiValue> + 'static,
) -> mlua::Result<Function> {
    native(lua, move |lua, args| {
        let (ud, args) = match args {
            [Value::UserData(ud), Value::Table(_), rest @ ..] => (ud, rest),
            [Value::UserData(ud), rest @ ..] => (ud, rest),
            _ => {
                return Err(Fail::Script(
                    "handle method called without its handle".into(),
                ))
            }
        };
        let mut data = ud.borrow_mut::<T>()?;
        f(lua, &mut data, args)
    })
}

fn string(lua: &Lua, bytes: &[u8]) -> NResult<Value> {
    Ok(Value::String(lua.create_string(bytes)?))
}

fn opt_string(lua: &Lua, bytes: Option<&[u8]>) -> NResult<MultiValue> {
    Ok(values(vec![match bytes {
        Some(b) => string(lua, b)?,
        None => Value::Nil,
    }]))
}

fn headers_table(lua: &Lua, headers: &[(String, Vec<u8>)]) -> NResult<Table> {
    let t = lua.create_table_with_capacity(0, headers.len())?;
    for (name, value) in headers {
        t.raw_set(name.as_str(), lua.create_string(value)?)?;
    }
    Ok(t)
}

/// Adds `read`, `readLine`, `readAll` natives for handles of type `T` under `prefix`.
fn install_reads<T: Readable>(lua: &Lua, native_tbl: &Table, prefix: &str) -> mlua::Result<()> {
    native_tbl.set(
        format!("{prefix}_read"),
        method(lua, |lua, h: &mut T, args| {
            let n = args::opt_number(lua, args, 1)?.map(|n| n as i64);
            opt_string(lua, h.cursor()?.read(n)?)
        })?,
    )?;
    native_tbl.set(
        format!("{prefix}_readLine"),
        method(lua, |lua, h: &mut T, args| {
            let trailing = args::truthy(args, 1);
            opt_string(lua, h.cursor()?.read_line(trailing))
        })?,
    )?;
    native_tbl.set(
        format!("{prefix}_readAll"),
        method(lua, |lua, h: &mut T, _| {
            Ok(values(vec![string(lua, h.cursor()?.read_all())?]))
        })?,
    )?;
    Ok(())
}

/// The error for a head change after `res.flush()` sent the head.
fn head_sent() -> Fail {
    Fail::Script("the response head was already sent (by res.flush)".into())
}

/// Runs `f` on the draft response's status and headers, before the head is sent.
fn with_head(h: &ServerExchange, f: impl FnOnce(&mut Response)) -> NResult<MultiValue> {
    match h.request.guard.exchange().with_head(f) {
        Ok(()) => Ok(nothing()),
        Err(PushError::HeadSent) => Err(head_sent()),
        Err(_) => Err(closed_file()),
    }
}

/// Returns a string field of the request (while the response is open).
fn request_field(
    lua: &Lua,
    h: &mut ServerExchange,
    field: impl FnOnce(&IncomingRequest) -> &[u8],
) -> NResult<MultiValue> {
    Ok(values(vec![string(lua, field(&h.open()?.request))?]))
}

fn write(lua: &Lua, h: &mut ServerExchange, args: &[Value], newline: bool) -> NResult<MultiValue> {
    let data = args::string(lua, args, 1)?;
    h.request
        .guard
        .exchange()
        .write(|body| {
            body.extend_from_slice(&data);
            if newline {
                body.push(b'\n');
            }
        })
        .map_err(|Closed| closed_file())?;
    Ok(nothing())
}

/// What `res.flush()` and the wait after it report: `true` when the connection has room (go on),
/// `false` when the client has gone, `nil` when the script must wait for [`STREAM_READY`].
fn flush_state(ready: Option<bool>) -> MultiValue {
    values(vec![ready.map_or(Value::Nil, Value::Boolean)])
}

fn set_status_code(lua: &Lua, h: &mut ServerExchange, args: &[Value]) -> NResult<MultiValue> {
    let code = args::integer(lua, args, 1)?;
    if !(100..=999).contains(&code) {
        return Err(args::bad_arg(1, "status code must be between 100 and 999"));
    }
    let reason = match args.get(1) {
        Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
        _ => None,
    };
    if reason.as_deref().is_some_and(|r| !valid_header_value(r)) {
        return Err(args::bad_arg(2, "reason phrase contains CR, LF or NUL"));
    }
    with_head(h, |r| {
        r.status = code as u16;
        if reason.is_some() {
            r.reason = reason;
        }
    })
}

fn set_response_header(lua: &Lua, h: &mut ServerExchange, args: &[Value]) -> NResult<MultiValue> {
    let name = args::string(lua, args, 1)?;
    let value = args::string(lua, args, 2)?;
    if !valid_header_name(&name) {
        return Err(args::bad_arg(1, "invalid header name"));
    }
    if !valid_header_value(&value) {
        return Err(args::bad_arg(2, "header value contains CR, LF or NUL"));
    }
    with_head(h, |r| {
        // A valid name is ASCII, hence UTF-8: the lossy conversion never replaces anything.
        match r
            .headers
            .iter_mut()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(&name))
        {
            Some((_, v)) => {
                v.clear();
                v.extend_from_slice(&value);
            }
            None => r
                .headers
                .push((String::from_utf8_lossy(&name).into_owned(), value.to_vec())),
        }
    })
}

/// Fills `native` with the handle methods.
pub fn install(lua: &Lua, native_tbl: &Table) -> mlua::Result<()> {
    // Request handle (`req.close()` does nothing, as in CraftOS-PC: it is Lua only).
    install_reads::<ServerExchange>(lua, native_tbl, "req")?;
    native_tbl.set(
        "req_getURL",
        method(lua, |lua, h: &mut ServerExchange, _| {
            request_field(lua, h, |r| r.target.as_bytes())
        })?,
    )?;
    native_tbl.set(
        "req_getMethod",
        method(lua, |lua, h: &mut ServerExchange, _| {
            request_field(lua, h, |r| r.method.as_bytes())
        })?,
    )?;
    native_tbl.set(
        "req_getRequestHeaders",
        method(lua, |lua, h: &mut ServerExchange, _| {
            let t = headers_table(lua, &h.open()?.request.headers)?;
            Ok(values(vec![Value::Table(t)]))
        })?,
    )?;

    // Response handle.
    native_tbl.set(
        "res_write",
        method(lua, |lua, h, args| write(lua, h, args, false))?,
    )?;
    native_tbl.set(
        "res_writeLine",
        method(lua, |lua, h, args| write(lua, h, args, true))?,
    )?;
    native_tbl.set(
        "res_flush",
        method(lua, |_, h: &mut ServerExchange, _| {
            Ok(flush_state(match h.request.guard.exchange().flush() {
                Ok(Room::Free) => Some(true),
                Ok(Room::Full) => None,
                Err(PushError::Gone) => Some(false),
                Err(_) => return Err(closed_file()),
            }))
        })?,
    )?;
    // After `res_flush` said to wait: whether the wait is over (see `flush_state`).
    native_tbl.set(
        "res_flushed",
        method(lua, |_, h: &mut ServerExchange, _| {
            let exchange = h.request.guard.exchange();
            Ok(flush_state(if exchange.ask_room() {
                Some(!exchange.is_gone())
            } else {
                None
            }))
        })?,
    )?;
    native_tbl.set(
        "res_close",
        method(lua, |_, h: &mut ServerExchange, _| {
            h.request
                .guard
                .exchange()
                .close()
                .map_err(|Closed| closed_file())?;
            h.uncount();
            Ok(nothing())
        })?,
    )?;
    native_tbl.set("res_setStatusCode", method(lua, set_status_code)?)?;
    native_tbl.set("res_setResponseHeader", method(lua, set_response_header)?)?;

    // Client response handle.
    install_reads::<ClientHandle>(lua, native_tbl, "cres")?;
    native_tbl.set(
        "cres_close",
        method(lua, |_, h: &mut ClientHandle, _| {
            h.open()?.closed = true;
            Ok(nothing())
        })?,
    )?;
    native_tbl.set(
        "cres_getResponseCode",
        method(lua, |lua, h: &mut ClientHandle, _| {
            let r = &h.open()?.response;
            Ok(values(vec![
                Value::Integer(r.code as mlua::Integer),
                string(lua, &r.reason)?,
            ]))
        })?,
    )?;
    native_tbl.set(
        "cres_getResponseHeaders",
        method(lua, |lua, h: &mut ClientHandle, _| {
            let t = headers_table(lua, &h.open()?.response.headers)?;
            Ok(values(vec![Value::Table(t)]))
        })?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::BodyCursor;

    #[test]
    fn reads() {
        let mut c = BodyCursor::new(b"ab\r\ncd\n\0e".to_vec());
        assert_eq!(c.read(Some(1)).unwrap(), Some(&b"a"[..]));
        assert_eq!(c.read_line(false), Some(&b"b\r"[..]));
        assert_eq!(c.read_line(true), Some(&b"cd\n"[..]));
        assert_eq!(c.read_all(), b"\0e");
        assert_eq!(c.read(None).unwrap(), None);
        assert_eq!(c.read_line(false), None);
        assert_eq!(c.read_all(), b"");
        assert!(c.read(Some(-1)).is_err());
    }
}
