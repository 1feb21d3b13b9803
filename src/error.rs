//! The error type of the library.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What went wrong running a script.
#[derive(Debug)]
pub enum Error {
    /// The script file could not be read.
    ReadScript {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The script did not compile.
    Syntax(String),
    /// The script raised an error that nothing caught. `traceback` is Lua's stack traceback.
    Script {
        /// The error message, as Lua formats it (`file:line: message`).
        message: String,
        /// Lua's traceback of the failing coroutine.
        traceback: String,
    },
    /// The script was stopped by a `terminate` event it did not catch (Ctrl+C, SIGTERM).
    Terminated,
    /// The Lua VM failed in a way that is not the script's fault (out of memory, a bug).
    Lua(mlua::Error),
    /// The runtime was already used to run a script; build a new one.
    AlreadyRan,
    /// The TLS certificate or key could not be loaded (the message names the file and why).
    Tls(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ReadScript { path, source } => {
                write!(f, "cannot read script {}: {source}", path.display())
            }
            Error::Syntax(msg) => write!(f, "syntax error: {msg}"),
            Error::Script { message, traceback } => {
                if traceback.is_empty() {
                    write!(f, "{message}")
                } else {
                    write!(f, "{message}\n{traceback}")
                }
            }
            Error::Terminated => write!(f, "Terminated"),
            Error::Lua(e) => write!(f, "Lua VM error: {e}"),
            Error::AlreadyRan => write!(f, "this runtime already ran a script; create a new one"),
            Error::Tls(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::ReadScript { source, .. } => Some(source),
            Error::Lua(e) => Some(e),
            _ => None,
        }
    }
}

impl From<mlua::Error> for Error {
    fn from(e: mlua::Error) -> Self {
        Error::Lua(e)
    }
}

/// The event loop is gone (the script ended): an event could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeGone;

impl fmt::Display for RuntimeGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the ccserve runtime has stopped; the event was not delivered"
        )
    }
}

impl std::error::Error for RuntimeGone {}
