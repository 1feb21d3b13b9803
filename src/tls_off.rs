//! Built without the `tls` feature: no TLS type can exist, and every way to ask for TLS says
//! the build lacks it (the real module is `tls.rs`).

use std::net::{SocketAddr, TcpStream};
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

/// Never called: no [`ServerTls`] exists.
pub fn spawn_accept(
    _tcp: TcpStream,
    tls: TlsListen,
    _config: &crate::config::Config,
    _serve: impl FnOnce(TcpStream, Option<(Option<SocketAddr>, Option<SocketAddr>)>) + Send + 'static,
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
