//! Built without the `tls` feature: no TLS type can exist, and every way to ask for TLS says
//! the build lacks it (the real module is `tls.rs`).

use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why TLS is refused in this build.
pub const MISSING: &str = "TLS is not in this build of ccserve (built without the `tls` feature)";

/// A server certificate; none can be loaded in this build.
#[derive(Debug)]
pub enum ServerTls {}

impl ServerTls {
    /// Always an error: this build has no TLS.
    pub fn load(_cert: &Path, _key: &Path) -> Result<Arc<ServerTls>, String> {
        Err(MISSING.into())
    }
}

/// How a listener serves TLS; none can be made in this build.
#[derive(Debug, Clone)]
pub struct TlsListen {
    /// The certificate presented.
    pub cert: Arc<ServerTls>,
    /// Plain HTTP on the same port too.
    pub plain_too: bool,
}

/// A TLS session; none can exist in this build.
pub enum Session {}

impl Session {
    /// Never called: no session exists.
    pub fn read(&self, _tcp: &TcpStream, _buf: &mut [u8]) -> io::Result<usize> {
        match *self {}
    }

    /// Never called: no session exists.
    pub fn write_all(&self, _tcp: &TcpStream, _buf: &[u8]) -> io::Result<()> {
        match *self {}
    }

    /// Never called: no session exists.
    pub fn send_nonblocking(&self, _tcp: &TcpStream, _bytes: &[u8]) -> io::Result<usize> {
        match *self {}
    }

    /// Never called: no session exists.
    pub fn pending(&self) -> bool {
        match *self {}
    }

    /// Never called: no session exists.
    pub fn holds_input(&self) -> bool {
        match *self {}
    }

    /// Never called: no session exists.
    pub fn recv_nonblocking(
        &self,
        _tcp: &TcpStream,
        _raw: &mut [std::mem::MaybeUninit<u8>],
        _plain: &mut Vec<u8>,
    ) -> io::Result<bool> {
        match *self {}
    }

    /// Never called: no session exists.
    pub fn close(&self, _tcp: &TcpStream) {
        match *self {}
    }
}

/// Never called: no TLS socket exists.
pub fn pumped(
    _socket: Arc<crate::socket::Socket>,
    _stack: usize,
    _write_timeout: Duration,
) -> io::Result<TcpStream> {
    Err(io::Error::other(MISSING))
}

/// Never called: no [`ServerTls`] exists.
pub fn spawn_accept(
    _tcp: TcpStream,
    tls: TlsListen,
    _config: &crate::config::Config,
    _serve: impl FnOnce(crate::socket::Socket) + Send + 'static,
) {
    let TlsListen { cert, plain_too } = tls;
    let _ = plain_too;
    match *cert {}
}

/// Always an error: this build has no TLS.
pub fn connect(
    _tcp: TcpStream,
    _host: &str,
    _ca_file: Option<&Path>,
    _deadline: Instant,
    _stack: usize,
    _write_timeout: Duration,
) -> Result<TcpStream, String> {
    Err(MISSING.into())
}
