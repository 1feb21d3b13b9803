//! Argument checking for native functions, with CraftOS-PC's error wording.
//!
//! Native CraftOS-PC functions report `bad argument #1 (expected number, got no value)`. Errors a
//! script can see are returned as [`Fail::Script`]; [`native`] turns them into a sentinel plus the
//! message, and the Lua prelude raises the message as a plain string (a Rust error would reach
//! `pcall` as an mlua userdata, which scripts cannot `:match`).

use mlua::{BorrowedBytes, Function, LightUserData, Lua, MultiValue, Value};

/// Why a native function failed.
#[derive(Debug)]
pub enum Fail {
    /// An error the script sees as a plain string message (raised with level 0).
    Script(String),
    /// A VM-level failure (out of memory and the like).
    Vm(mlua::Error),
}

impl From<mlua::Error> for Fail {
    fn from(e: mlua::Error) -> Self {
        Fail::Vm(e)
    }
}

/// Result of a native function.
pub type NResult<T> = Result<T, Fail>;

/// The closed-handle error every handle raises after `close`.
pub fn closed_file() -> Fail {
    Fail::Script("attempt to use a closed file".into())
}

/// The value the Lua prelude recognises as "raise the next value".
pub fn error_sentinel() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// A native function as [`native`] takes it.
type NativeFn = dyn Fn(&Lua, &[Value]) -> NResult<MultiValue>;

/// Wraps a native function so that [`Fail::Script`] comes back as `(sentinel, message)`.
pub fn native<F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, &[Value]) -> NResult<MultiValue> + 'static,
{
    boxed_native(lua, Box::new(f))
}

/// [`native`] for one boxed function type: mlua's calling glue is then compiled once for all
/// the natives instead of once per closure (58 KB of an x86_64 build), for one
/// indirect call per native call.
fn boxed_native(lua: &Lua, f: Box<NativeFn>) -> mlua::Result<Function> {
    lua.create_function(move |lua, mut args: MultiValue| {
        // mlua fills the deque front to back, so this is a borrow, not a copy.
        match f(lua, args.make_contiguous()) {
            Ok(v) => Ok(v),
            Err(Fail::Script(msg)) => {
                let msg = Value::String(lua.create_string(msg)?);
                Ok(MultiValue::from_vec(vec![error_sentinel(), msg]))
            }
            Err(Fail::Vm(e)) => Err(e),
        }
    })
}

/// The type name CraftOS-PC reports for argument `i` (1-based) of `args`.
pub fn type_name(args: &[Value], i: usize) -> &'static str {
    match args.get(i - 1) {
        None => "no value",
        Some(v) => v.type_name(),
    }
}

/// `bad argument #i (expected T, got U)`.
pub fn bad_type(args: &[Value], i: usize, expected: &str) -> Fail {
    Fail::Script(format!(
        "bad argument #{i} (expected {expected}, got {})",
        type_name(args, i)
    ))
}

/// `bad argument #i (message)`.
pub fn bad_arg(i: usize, message: &str) -> Fail {
    Fail::Script(format!("bad argument #{i} ({message})"))
}

/// A number argument; numeric strings are accepted, as `luaL_checknumber` does.
pub fn number(lua: &Lua, args: &[Value], i: usize) -> NResult<f64> {
    match args.get(i - 1) {
        Some(Value::Integer(n)) => Ok(*n as f64),
        Some(Value::Number(n)) => Ok(*n),
        Some(v @ Value::String(_)) => lua
            .coerce_number(v.clone())?
            .ok_or_else(|| bad_type(args, i, "number")),
        _ => Err(bad_type(args, i, "number")),
    }
}

/// An integer argument (floats are truncated, numeric strings accepted), as `luaL_checkinteger`.
pub fn integer(lua: &Lua, args: &[Value], i: usize) -> NResult<i64> {
    let n = number(lua, args, i)?;
    if !n.is_finite() {
        return Err(bad_arg(i, "number has no integer representation"));
    }
    Ok(n.trunc() as i64)
}

/// An optional number argument (`nil` or absent gives `None`).
pub fn opt_number(lua: &Lua, args: &[Value], i: usize) -> NResult<Option<f64>> {
    match args.get(i - 1) {
        None | Some(Value::Nil) => Ok(None),
        _ => number(lua, args, i).map(Some),
    }
}

/// A string argument; numbers are converted with Lua's rules (`12.5` becomes `"12.5"`).
pub fn bytes(lua: &Lua, args: &[Value], i: usize) -> NResult<Vec<u8>> {
    string(lua, args, i).map(|s| s.to_vec())
}

/// A string argument without copying it: the script's string, or a number converted with Lua's
/// rules. Use where the bytes are only looked at; [`bytes`] when they are kept.
pub fn string(lua: &Lua, args: &[Value], i: usize) -> NResult<BorrowedBytes> {
    match args.get(i - 1) {
        Some(Value::String(s)) => Ok(s.as_bytes()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => match lua.coerce_string(v.clone())? {
            Some(s) => Ok(s.as_bytes()),
            None => Err(bad_type(args, i, "string")),
        },
        _ => Err(bad_type(args, i, "string")),
    }
}

/// An optional string argument.
pub fn opt_bytes(lua: &Lua, args: &[Value], i: usize) -> NResult<Option<Vec<u8>>> {
    match args.get(i - 1) {
        None | Some(Value::Nil) => Ok(None),
        _ => bytes(lua, args, i).map(Some),
    }
}

/// Builds a multi-value return.
pub fn values(v: Vec<Value>) -> MultiValue {
    MultiValue::from_vec(v)
}

/// `false, message`: how CraftOS functions report an expected failure without raising.
pub fn failure(lua: &Lua, message: impl AsRef<[u8]>) -> NResult<MultiValue> {
    Ok(values(vec![
        Value::Boolean(false),
        Value::String(lua.create_string(message)?),
    ]))
}

/// Whether argument `i` is truthy (anything but `nil`, `false` or absent).
pub fn truthy(args: &[Value], i: usize) -> bool {
    args.get(i - 1)
        .is_some_and(|v| !matches!(v, Value::Nil | Value::Boolean(false)))
}

/// A whole number as a Lua value: an integer when it fits the build's `lua_Integer` (32 bits on
/// 32-bit ARM with Lua 5.2), else a float (exact up to 2^53).
pub fn int_value(v: i64) -> Value {
    match mlua::Integer::try_from(v) {
        Ok(i) => Value::Integer(i),
        Err(_) => Value::Number(v as f64),
    }
}

/// No return values.
pub fn nothing() -> MultiValue {
    MultiValue::new()
}
