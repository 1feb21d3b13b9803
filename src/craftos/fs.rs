//! The native half of the `fs` API: CraftOS paths over a sandbox root directory. The Lua half
//! (and `loadfile`, `dofile`, `require`, `settings`) is in `fs.lua` beside it.
//!
//! A CraftOS path is normalised the way CC: Tweaked does for `fs.combine` (`\` is `/`, empty and
//! `.` segments vanish, `..` cancels the previous segment and is kept when there is none). For a
//! real file access, leading `..` segments are then dropped (clamped at the root), and the real
//! path is checked after resolving symlinks: the deepest existing part of it is canonicalised and
//! must lie inside the root, or the access fails with `/path: Access denied`.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use mlua::{AnyUserData, Lua, MultiValue, Table, Value};

use super::args::{self, closed_file, native, nothing, values, Fail, NResult};
use super::Context;

/// The sandbox: the real directory that is `/`, and the running program's CraftOS path.
#[derive(Debug, Clone, Default)]
pub struct Files(Rc<RefCell<FilesInner>>);

#[derive(Debug, Default)]
struct FilesInner {
    root: PathBuf,
    program: String,
}

impl Files {
    /// Sets the root directory (canonicalised by the caller) and the running program's path.
    pub fn set(&self, root: PathBuf, program: String) {
        let mut inner = self.0.borrow_mut();
        inner.root = root;
        inner.program = program;
    }

    /// The root directory.
    pub fn root(&self) -> PathBuf {
        self.0.borrow().root.clone()
    }

    /// The running program's CraftOS path (e.g. `/server.lua`).
    pub fn program(&self) -> String {
        self.0.borrow().program.clone()
    }

    /// The canonical root (empty root means the current directory).
    fn real_root(&self) -> PathBuf {
        let root = self.root();
        let root = if root.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            root
        };
        std::fs::canonicalize(&root).unwrap_or(root)
    }

    /// The real path of the clamped CraftOS path `path` (see [`clamp`]), with symlinks in its
    /// existing part resolved; `None` when that leads outside the root or through a dangling
    /// symlink.
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let root = self.real_root();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut existing = parts.len();
        loop {
            let candidate = join_all(&root, &parts[..existing]);
            if existing == 0 || std::fs::symlink_metadata(&candidate).is_ok() {
                let canon = std::fs::canonicalize(&candidate).ok()?;
                if !canon.starts_with(&root) {
                    return None;
                }
                return Some(join_all(&canon, &parts[existing..]));
            }
            existing -= 1;
        }
    }

    /// The real path of the entry `path` itself (its parent resolved, the last segment not
    /// followed): for deleting or moving a symlink rather than its target.
    fn resolve_entry(&self, path: &str) -> Option<PathBuf> {
        match path.rsplit_once('/') {
            Some((dir, name)) => Some(self.resolve(dir)?.join(name)),
            None if path.is_empty() => self.resolve(path),
            None => Some(self.resolve("")?.join(path)),
        }
    }
}

fn join_all(base: &Path, parts: &[&str]) -> PathBuf {
    let mut p = base.to_path_buf();
    for part in parts {
        p.push(part);
    }
    p
}

/// Normalises a CraftOS path like CC: Tweaked's `fs.combine` (no leading `/`; may start with
/// `..` segments). `wildcards` keeps `*` and `?`.
pub fn sanitize(path: &str, wildcards: bool) -> String {
    let cleaned: String = path
        .chars()
        .map(|c| if c == '\\' { '/' } else { c })
        .filter(|&c| {
            !(c < ' '
                || matches!(c, '"' | ':' | '<' | '>' | '|')
                || (!wildcards && matches!(c, '*' | '?')))
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    for part in cleaned.split('/') {
        let part = part.trim();
        if part.is_empty() || part.chars().all(|c| c == '.') && part != ".." {
            continue;
        }
        if part == ".." {
            if out.last().is_some_and(|l| l != "..") {
                out.pop();
            } else {
                out.push("..".into());
            }
        } else {
            out.push(part.chars().take(255).collect());
        }
    }
    out.join("/")
}

/// A normalised path with its leading `..` segments dropped: what real accesses use.
pub fn clamp(path: &str) -> String {
    let mut rest = path;
    while rest == ".." || rest.starts_with("../") {
        rest = rest.get(3..).unwrap_or("");
    }
    rest.to_string()
}

/// Argument `i` as a clamped CraftOS path.
fn path_arg(lua: &Lua, args: &[Value], i: usize) -> NResult<String> {
    let raw = args::bytes(lua, args, i)?;
    Ok(clamp(&sanitize(&String::from_utf8_lossy(&raw), false)))
}

fn script(path: &str, message: &str) -> Fail {
    Fail::Script(format!("/{path}: {message}"))
}

fn one(v: Value) -> NResult<MultiValue> {
    Ok(values(vec![v]))
}

fn string(lua: &Lua, s: impl AsRef<[u8]>) -> NResult<Value> {
    Ok(Value::String(lua.create_string(s)?))
}

fn ms(t: std::io::Result<std::time::SystemTime>) -> Option<i64> {
    let t = t.ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// Whether a glob segment (`*`, `?`) matches `name` (greedy with backtracking to the last `*`).
fn glob_match(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(c) if *c == '?' || *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// A file handle's state.
enum HandleState {
    Read { data: Vec<u8>, pos: usize },
    Write(BufWriter<File>),
}

/// The userdata behind a file handle; `None` once closed.
struct FileHandle {
    state: Option<HandleState>,
    binary: bool,
}

fn with_handle<R>(
    args: &[Value],
    f: impl FnOnce(&mut HandleState, bool) -> NResult<R>,
) -> NResult<R> {
    let ud: &AnyUserData = match args.first() {
        Some(Value::UserData(ud)) => ud,
        _ => {
            return Err(Fail::Script(
                "handle method called without its handle".into(),
            ))
        }
    };
    let mut h = ud.borrow_mut::<FileHandle>()?;
    let binary = h.binary;
    match h.state.as_mut() {
        Some(state) => f(state, binary),
        None => Err(closed_file()),
    }
}

fn reader(state: &mut HandleState) -> NResult<(&[u8], &mut usize)> {
    match state {
        HandleState::Read { data, pos } => Ok((data.as_slice(), pos)),
        HandleState::Write(_) => Err(Fail::Script("file is not open for reading".into())),
    }
}

fn writer(state: &mut HandleState) -> NResult<&mut BufWriter<File>> {
    match state {
        HandleState::Write(w) => Ok(w),
        HandleState::Read { .. } => Err(Fail::Script("file is not open for writing".into())),
    }
}

fn io_fail(e: std::io::Error) -> Fail {
    Fail::Script(e.to_string())
}

fn h_read(lua: &Lua, args: &[Value]) -> NResult<MultiValue> {
    let count = args::opt_number(lua, &args[1..], 1)?;
    with_handle(args, |state, binary| {
        let (data, pos) = reader(state)?;
        let start = (*pos).min(data.len());
        match count {
            None => {
                if start >= data.len() {
                    return one(Value::Nil);
                }
                *pos = start + 1;
                if binary {
                    one(Value::Integer(data[start] as mlua::Integer))
                } else {
                    one(string(lua, &data[start..start + 1])?)
                }
            }
            Some(n) => {
                if n < 0.0 {
                    return Err(Fail::Script(
                        "Cannot read a negative number of bytes".into(),
                    ));
                }
                if start >= data.len() && n > 0.0 {
                    return one(Value::Nil);
                }
                let end = start.saturating_add(n as usize).min(data.len());
                *pos = end;
                one(string(lua, &data[start..end])?)
            }
        }
    })
}

fn h_read_line(lua: &Lua, args: &[Value]) -> NResult<MultiValue> {
    let trailing = args::truthy(args, 2);
    with_handle(args, |state, _| {
        let (data, pos) = reader(state)?;
        let start = (*pos).min(data.len());
        if start >= data.len() {
            return one(Value::Nil);
        }
        let rest = &data[start..];
        let (len, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) if trailing => (i + 1, start + i + 1),
            Some(i) => (i, start + i + 1),
            None => (rest.len(), data.len()),
        };
        *pos = next;
        one(string(lua, &data[start..start + len])?)
    })
}

fn h_read_all(lua: &Lua, args: &[Value]) -> NResult<MultiValue> {
    with_handle(args, |state, _| {
        let (data, pos) = reader(state)?;
        let start = (*pos).min(data.len());
        *pos = data.len();
        one(string(lua, &data[start..])?)
    })
}

// `i64::from` is a no-op where `mlua::Integer` is i64, but not on 32-bit Lua 5.2 builds.
#[allow(clippy::useless_conversion)]
fn h_write(lua: &Lua, args: &[Value], newline: bool) -> NResult<MultiValue> {
    let a = &args[1..];
    let binary_byte = match a.first() {
        Some(Value::Integer(n)) => Some(i64::from(*n)),
        Some(Value::Number(n)) => Some(*n as i64),
        _ => None,
    };
    with_handle(args, |state, binary| {
        let mut data = match binary_byte {
            Some(b) if binary => vec![(b & 0xff) as u8],
            _ => match a.first() {
                Some(Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
                    args::bytes(lua, a, 1)?
                }
                _ if binary => return Err(args::bad_type(a, 1, "string or number")),
                _ => return Err(args::bad_type(a, 1, "string")),
            },
        };
        if newline {
            data.push(b'\n');
        }
        writer(state)?.write_all(&data).map_err(io_fail)?;
        Ok(nothing())
    })
}

fn h_seek(lua: &Lua, args: &[Value]) -> NResult<MultiValue> {
    let a = &args[1..];
    let whence = args::opt_bytes(lua, a, 1)?.unwrap_or_else(|| b"cur".to_vec());
    let offset = args::opt_number(lua, a, 2)?.unwrap_or(0.0) as i64;
    let whence = match whence.as_slice() {
        b"set" | b"cur" | b"end" => whence,
        other => {
            return Err(args::bad_arg(
                1,
                &format!("invalid option '{}'", String::from_utf8_lossy(other)),
            ))
        }
    };
    with_handle(args, |state, _| {
        let (current, len) = match state {
            HandleState::Read { data, pos } => (*pos as i64, data.len() as i64),
            HandleState::Write(w) => {
                let cur = w.stream_position().map_err(io_fail)? as i64;
                w.flush().map_err(io_fail)?;
                let len = w.get_ref().metadata().map_err(io_fail)?.len() as i64;
                (cur, len)
            }
        };
        let base = match whence.as_slice() {
            b"set" => 0,
            b"end" => len,
            _ => current,
        };
        let target = base.saturating_add(offset);
        if target < 0 {
            return Ok(values(vec![
                Value::Nil,
                string(lua, "Position is negative")?,
            ]));
        }
        match state {
            HandleState::Read { pos, .. } => *pos = target as usize,
            HandleState::Write(w) => {
                w.seek(SeekFrom::Start(target as u64)).map_err(io_fail)?;
            }
        }
        one(args::int_value(target))
    })
}

fn h_flush(args: &[Value]) -> NResult<MultiValue> {
    with_handle(args, |state, _| {
        if let HandleState::Write(w) = state {
            w.flush().map_err(io_fail)?;
        }
        Ok(nothing())
    })
}

fn h_close(args: &[Value]) -> NResult<MultiValue> {
    let ud: &AnyUserData = match args.first() {
        Some(Value::UserData(ud)) => ud,
        _ => {
            return Err(Fail::Script(
                "handle method called without its handle".into(),
            ))
        }
    };
    let mut h = ud.borrow_mut::<FileHandle>()?;
    match h.state.take() {
        None => Err(closed_file()),
        Some(HandleState::Write(mut w)) => {
            w.flush().map_err(io_fail)?;
            Ok(nothing())
        }
        Some(HandleState::Read { .. }) => Ok(nothing()),
    }
}

/// `open(path, mode)`: `(userdata, binary)` or `(nil, message)`.
fn open(lua: &Lua, args: &[Value], files: &Files) -> NResult<MultiValue> {
    let path = path_arg(lua, args, 1)?;
    let mode = args::bytes(lua, args, 2)?;
    let (kind, binary) = match mode.as_slice() {
        b"r" => ('r', false),
        b"rb" => ('r', true),
        b"w" => ('w', false),
        b"wb" => ('w', true),
        b"a" => ('a', false),
        b"ab" => ('a', true),
        _ => return Err(Fail::Script("Unsupported mode".into())),
    };
    let fail = |msg: &str| -> NResult<MultiValue> {
        Ok(values(vec![
            Value::Nil,
            string(lua, format!("/{path}: {msg}"))?,
        ]))
    };
    let Some(real) = files.resolve(&path) else {
        return fail("Access denied");
    };
    let state = if kind == 'r' {
        match std::fs::metadata(&real) {
            Err(_) => return fail("No such file"),
            Ok(m) if m.is_dir() => return fail("Is a directory"),
            Ok(_) => {}
        }
        match std::fs::read(&real) {
            Ok(data) => HandleState::Read { data, pos: 0 },
            Err(e) => return fail(&e.to_string()),
        }
    } else {
        if path.is_empty() || real.is_dir() {
            return fail("Cannot write to directory");
        }
        if let Some(parent) = real.parent() {
            if std::fs::create_dir_all(parent).is_err() {
                return fail("Cannot write to file");
            }
        }
        let mut options = OpenOptions::new();
        options.create(true);
        if kind == 'a' {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        match options.open(&real) {
            Ok(f) => HandleState::Write(BufWriter::new(f)),
            Err(e) => return fail(&e.to_string()),
        }
    };
    let ud = lua.create_any_userdata(FileHandle {
        state: Some(state),
        binary,
    })?;
    Ok(values(vec![Value::UserData(ud), Value::Boolean(binary)]))
}

fn copy_tree(from: &Path, to: &Path, root: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        // Follow only links that stay inside the root.
        // Copy files behind links that stay inside the root; skip linked directories (which may
        // loop) and links leading out.
        return match std::fs::canonicalize(from) {
            Ok(target) if target.starts_with(root) && target.is_file() => {
                std::fs::copy(target, to).map(|_| ())
            }
            _ => Ok(()),
        };
    }
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()), root)?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

/// `move` (when `copy` is false) or `copy`.
fn transfer(lua: &Lua, args: &[Value], files: &Files, copy: bool) -> NResult<MultiValue> {
    let src = path_arg(lua, args, 1)?;
    let dst = path_arg(lua, args, 2)?;
    let (src_real, dst_real) = if copy {
        (files.resolve(&src), files.resolve_entry(&dst))
    } else {
        (files.resolve_entry(&src), files.resolve_entry(&dst))
    };
    let Some(src_real) = src_real else {
        return Err(script(&src, "Access denied"));
    };
    let Some(dst_real) = dst_real else {
        return Err(script(&dst, "Access denied"));
    };
    if src.is_empty() && !copy {
        return Err(script(&src, "Access denied"));
    }
    if std::fs::symlink_metadata(&src_real).is_err() {
        return Err(script(&src, "No such file"));
    }
    if std::fs::symlink_metadata(&dst_real).is_ok() {
        return Err(script(&dst, "File exists"));
    }
    if dst == src || dst.starts_with(&format!("{src}/")) || src.is_empty() {
        let what = if copy { "copy" } else { "move" };
        return Err(Fail::Script(format!(
            "Can't {what} a directory inside itself"
        )));
    }
    if let Some(parent) = dst_real.parent() {
        std::fs::create_dir_all(parent).map_err(|e| script(&dst, &e.to_string()))?;
    }
    let result = if copy {
        copy_tree(&src_real, &dst_real, &files.real_root())
    } else {
        std::fs::rename(&src_real, &dst_real)
    };
    result.map_err(|e| script(&src, &e.to_string()))?;
    Ok(nothing())
}

fn list(files: &Files, path: &str) -> Option<Vec<String>> {
    let real = files.resolve(path)?;
    let mut names: Vec<String> = std::fs::read_dir(real)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Some(names)
}

fn exists(files: &Files, path: &str) -> bool {
    files.resolve(path).is_some_and(|p| p.exists())
}

fn is_dir(files: &Files, path: &str) -> bool {
    files.resolve(path).is_some_and(|p| p.is_dir())
}

fn find(files: &Files, dir: &str, parts: &[&str], out: &mut Vec<String>) {
    let Some((part, rest)) = parts.split_first() else {
        if exists(files, dir) {
            out.push(dir.to_string());
        }
        return;
    };
    if part.contains(['*', '?']) {
        let pattern: Vec<char> = part.chars().collect();
        for name in list(files, dir).unwrap_or_default() {
            let chars: Vec<char> = name.chars().collect();
            if glob_match(&pattern, &chars) {
                find(files, &join(dir, &name), rest, out);
            }
        }
    } else {
        find(files, &join(dir, part), rest, out);
    }
}

/// Nominal free space and capacity: std has no portable disk-usage query.
const NOMINAL_SPACE: i64 = 1 << 40;

/// A native function whose first argument is a CraftOS path: `f` gets the sandbox and the path.
fn path_native<F>(lua: &Lua, files: &Files, f: F) -> mlua::Result<mlua::Function>
where
    F: Fn(&Lua, &Files, String, &[Value]) -> NResult<MultiValue> + 'static,
{
    let files = files.clone();
    native(lua, move |lua, args| {
        let path = path_arg(lua, args, 1)?;
        f(lua, &files, path, args)
    })
}

/// The metadata of the file at `path` (following links inside the sandbox), or `No such file`.
fn metadata(files: &Files, path: &str) -> NResult<std::fs::Metadata> {
    files
        .resolve(path)
        .and_then(|p| std::fs::metadata(p).ok())
        .ok_or_else(|| script(path, "No such file"))
}

/// Fills `native` with the `fs` functions.
pub fn install(lua: &Lua, native_tbl: &Table, ctx: &Context) -> mlua::Result<()> {
    let set = |name: &str, f: mlua::Function| native_tbl.set(name, f);

    let files = ctx.files.clone();
    set(
        "fs_open",
        native(lua, move |lua, args| open(lua, args, &files))?,
    )?;
    set("fh_read", native(lua, h_read)?)?;
    set("fh_readLine", native(lua, h_read_line)?)?;
    set("fh_readAll", native(lua, h_read_all)?)?;
    set(
        "fh_write",
        native(lua, |lua, args| h_write(lua, args, false))?,
    )?;
    set(
        "fh_writeLine",
        native(lua, |lua, args| h_write(lua, args, true))?,
    )?;
    set("fh_seek", native(lua, h_seek)?)?;
    set("fh_flush", native(lua, |_, args| h_flush(args))?)?;
    set("fh_close", native(lua, |_, args| h_close(args))?)?;

    set(
        "fs_exists",
        path_native(lua, &ctx.files, |_lua, files, path, _args| {
            one(Value::Boolean(exists(files, &path)))
        })?,
    )?;
    set(
        "fs_isDir",
        path_native(lua, &ctx.files, |_lua, files, path, _args| {
            one(Value::Boolean(is_dir(files, &path)))
        })?,
    )?;
    set(
        "fs_isReadOnly",
        path_native(lua, &ctx.files, |_lua, files, path, _args| {
            one(Value::Boolean(files.resolve(&path).is_none()))
        })?,
    )?;
    set(
        "fs_makeDir",
        path_native(lua, &ctx.files, |_lua, files, path, _args| {
            let real = files
                .resolve(&path)
                .ok_or_else(|| script(&path, "Access denied"))?;
            if real.exists() && !real.is_dir() {
                return Err(script(&path, "File exists"));
            }
            std::fs::create_dir_all(&real).map_err(|e| script(&path, &e.to_string()))?;
            Ok(nothing())
        })?,
    )?;
    set(
        "fs_list",
        path_native(lua, &ctx.files, |lua, files, path, _args| {
            if !is_dir(files, &path) {
                return Err(script(&path, "Not a directory"));
            }
            let names = list(files, &path).ok_or_else(|| script(&path, "Not a directory"))?;
            one(Value::Table(lua.create_sequence_from(names)?))
        })?,
    )?;
    set(
        "fs_getSize",
        path_native(lua, &ctx.files, |_lua, files, path, _args| {
            let meta = metadata(files, &path)?;
            one(args::int_value(if meta.is_dir() {
                0
            } else {
                meta.len() as i64
            }))
        })?,
    )?;
    set(
        "fs_attributes",
        path_native(lua, &ctx.files, |lua, files, path, _args| {
            let meta = metadata(files, &path)?;
            let modified = ms(meta.modified()).unwrap_or(0);
            let created = ms(meta.created()).unwrap_or(modified);
            let t = lua.create_table()?;
            t.set("size", if meta.is_dir() { 0 } else { meta.len() as i64 })?;
            t.set("isDir", meta.is_dir())?;
            t.set("isReadOnly", false)?;
            t.set("created", created)?;
            t.set("modified", modified)?;
            t.set("modification", modified)?;
            one(Value::Table(t))
        })?,
    )?;
    let files = ctx.files.clone();
    set(
        "fs_move",
        native(lua, move |lua, args| transfer(lua, args, &files, false))?,
    )?;
    let files = ctx.files.clone();
    set(
        "fs_copy",
        native(lua, move |lua, args| transfer(lua, args, &files, true))?,
    )?;
    set(
        "fs_delete",
        path_native(lua, &ctx.files, |_lua, files, path, _args| {
            if path.is_empty() {
                return Err(script(&path, "Access denied"));
            }
            let real = files
                .resolve_entry(&path)
                .ok_or_else(|| script(&path, "Access denied"))?;
            let Ok(meta) = std::fs::symlink_metadata(&real) else {
                return Ok(nothing());
            };
            let result = if meta.is_dir() {
                std::fs::remove_dir_all(&real)
            } else {
                std::fs::remove_file(&real)
            };
            result.map_err(|e| script(&path, &e.to_string()))?;
            Ok(nothing())
        })?,
    )?;
    set(
        "fs_getFreeSpace",
        native(lua, |lua, args| {
            path_arg(lua, args, 1)?;
            one(args::int_value(NOMINAL_SPACE))
        })?,
    )?;
    set(
        "fs_getDrive",
        path_native(lua, &ctx.files, |lua, files, path, _args| {
            if exists(files, &path) {
                one(string(lua, "hdd")?)
            } else {
                one(Value::Nil)
            }
        })?,
    )?;
    let files = ctx.files.clone();
    set(
        "fs_find",
        native(lua, move |lua, args| {
            let raw = args::bytes(lua, args, 1)?;
            let pattern = clamp(&sanitize(&String::from_utf8_lossy(&raw), true));
            let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
            let mut out = Vec::new();
            if !parts.is_empty() {
                find(&files, "", &parts, &mut out);
            }
            out.sort();
            out.dedup();
            one(Value::Table(lua.create_sequence_from(out)?))
        })?,
    )?;
    set(
        "fs_combine",
        native(lua, |lua, args| {
            let mut joined = String::new();
            for i in 1..=args.len().max(1) {
                let part = args::bytes(lua, args, i)?;
                joined.push('/');
                joined.push_str(&String::from_utf8_lossy(&part));
            }
            one(string(lua, sanitize(&joined, true))?)
        })?,
    )?;
    set(
        "fs_getName",
        native(lua, |lua, args| {
            let raw = args::bytes(lua, args, 1)?;
            let path = sanitize(&String::from_utf8_lossy(&raw), true);
            let name = match path.rsplit_once('/') {
                Some((_, name)) => name.to_string(),
                None if path.is_empty() => "root".to_string(),
                None => path,
            };
            one(string(lua, name)?)
        })?,
    )?;
    set(
        "fs_getDir",
        native(lua, |lua, args| {
            let raw = args::bytes(lua, args, 1)?;
            let path = sanitize(&String::from_utf8_lossy(&raw), true);
            let dir = match path.rsplit_once('/') {
                Some((dir, _)) => dir.to_string(),
                None if path.is_empty() => "..".to_string(),
                None => String::new(),
            };
            one(string(lua, dir)?)
        })?,
    )?;
    let files = ctx.files.clone();
    set(
        "fs_program",
        native(lua, move |lua, _| one(string(lua, files.program())?))?,
    )?;
    // A host path inside the root, as CraftOS path (`nil` otherwise): lets `dofile(arg[0]...)`
    // work while `arg[0]` is the host path of the script.
    let files = ctx.files.clone();
    set(
        "fs_fromHost",
        native(lua, move |lua, args| {
            let raw = args::bytes(lua, args, 1)?;
            let host = PathBuf::from(String::from_utf8_lossy(&raw).into_owned());
            let host = std::fs::canonicalize(&host).unwrap_or(host);
            match host.strip_prefix(files.real_root()) {
                Ok(rel) if host.is_absolute() => {
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    one(string(lua, format!("/{rel}"))?)
                }
                _ => one(Value::Nil),
            }
        })?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{clamp, glob_match, sanitize};

    #[test]
    fn sanitizes_like_combine() {
        assert_eq!(sanitize("/a//b/./c/", false), "a/b/c");
        assert_eq!(sanitize("a\\b", false), "a/b");
        assert_eq!(sanitize("a/../..", false), "..");
        assert_eq!(sanitize("../../x", false), "../../x");
        assert_eq!(sanitize("a/.../b", false), "a/b");
        assert_eq!(sanitize("a*b?", false), "ab");
        assert_eq!(sanitize("a*b?", true), "a*b?");
        assert_eq!(clamp("../../x"), "x");
        assert_eq!(clamp(".."), "");
        assert_eq!(clamp("..x/y"), "..x/y");
    }

    #[test]
    fn globs() {
        let m = |p: &str, n: &str| {
            glob_match(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("*.lua", "a.lua"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*", ""));
        assert!(!m("*.lua", "a.txt"));
        assert!(m("*a*b", "xaab"));
        assert!(!m("*a*a*a*a*a*a*a*b", &"a".repeat(200)));
        assert!(m("a*", "a"));
    }
}
