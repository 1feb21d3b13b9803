//! TLS for servers and clients, with rustls (the `ring` provider).
//!
//! Once the handshake is done, a connection's [`Session`] travels with its socket
//! ([`crate::socket::Socket`]): the HTTP engine reads and writes plain bytes through it from
//! whichever thread has the connection, its connection thread or the Lua thread (which reads a
//! parked connection's next request and writes small answers itself, `src/lane.rs`,
//! `src/http/direct.rs`), so an HTTPS request costs what a plain one does plus the crypto. Code
//! that drives a plain socket itself (the WebSocket engine, the HTTP client) gets the far end of
//! a socket pair instead, with two threads pumping between it and the session ([`pumped`]).
//!
//! Servers: [`ServerTls`] holds the certificate and key given on the command line and re-reads
//! them when their files change (checked at most once a second, at the next handshake), so a
//! renewed certificate is used without a restart; connections already open keep theirs.
//! [`accept`] runs the handshake within the header timeout. Clients: [`connect`] verifies the
//! server against the system's trust store (plus `--ca-file`), and reports a failed
//! verification as `Certificate verify failed: ...`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection,
};

use crate::socket::Socket;

/// Largest piece read off a socket for the session at once, and moved by a pump at once. Half a
/// TLS record: a pump's buffer is resident for as long as its connection lives.
const PIECE: usize = 8 * 1024;

/// How often the certificate files are looked at for a change, at most.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server's certificate and key, re-read when their files change.
pub struct ServerTls {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<Loaded>,
}

struct Loaded {
    config: Arc<ServerConfig>,
    /// Modification times the config was built from.
    stamps: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ServerTls {
    /// Loads the certificate chain and key (PEM files). The error says which file is wrong and
    /// why.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerTls>, String> {
        let config = server_config(cert, key)?;
        Ok(Arc::new(ServerTls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            state: Mutex::new(Loaded {
                config,
                stamps: (modified(cert), modified(key)),
                checked: Instant::now(),
            }),
        }))
    }

    /// The configuration for a new connection: re-read first if a file changed. A file that
    /// fails to load (a renewal caught half-written) leaves the previous configuration in use
    /// and is tried again at the next check.
    pub fn config(&self) -> Arc<ServerConfig> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.checked.elapsed() >= RELOAD_CHECK {
            st.checked = Instant::now();
            let stamps = (modified(&self.cert), modified(&self.key));
            if stamps != st.stamps {
                match server_config(&self.cert, &self.key) {
                    Ok(config) => {
                        log::info!("TLS certificate reloaded from {}", self.cert.display());
                        st.config = config;
                        st.stamps = stamps;
                    }
                    Err(e) => log::warn!("TLS certificate not reloaded (the old one stays): {e}"),
                }
            }
        }
        st.config.clone()
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "TLS certificate {}: no certificate in it (a PEM file with BEGIN CERTIFICATE)",
            cert.display()
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate {} and its key: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client configuration trusting the system's certificates and `ca_file`'s, built once per
/// CA file.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    static CONFIGS: OnceLock<Mutex<HashMap<Option<PathBuf>, Arc<ClientConfig>>>> = OnceLock::new();
    let key = ca_file.map(Path::to_path_buf);
    let configs = CONFIGS.get_or_init(Default::default);
    if let Some(config) = configs.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(config.clone());
    }
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        log::debug!("system trust store: {e}");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    log::debug!("{added} certificates from the system trust store");
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("CA file {}: {e}", path.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "CA file {}: no usable certificate in it",
                path.display()
            ));
        }
    }
    if roots.is_empty() {
        return Err(
            "no trusted certificates: the system has none (install the ca-certificates \
                    package, or set SSL_CERT_FILE) and no --ca-file was given"
                .into(),
        );
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    configs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, config.clone());
    Ok(config)
}

/// A client's words for a failed handshake.
fn client_error(e: &io::Error) -> String {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::InvalidCertificate(c) => {
                let why = match c {
                    rustls::CertificateError::UnknownIssuer => {
                        "it is not signed by a trusted authority (add its CA with --ca-file)"
                            .to_string()
                    }
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. } => {
                        "it is not valid for this host name".to_string()
                    }
                    rustls::CertificateError::Expired
                    | rustls::CertificateError::ExpiredContext { .. } => "it has expired".into(),
                    other => format!("{other:?}"),
                };
                format!("Certificate verify failed: {why}")
            }
            other => format!("TLS handshake failed: {other}"),
        };
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "Timed out".into(),
        _ => format!("TLS handshake failed: {e}"),
    }
}

/// Runs a handshake to its end, each blocking read and write bounded by `deadline`.
fn handshake(conn: &mut Connection, tcp: &mut TcpStream, deadline: Instant) -> io::Result<()> {
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        tcp.set_read_timeout(Some(left))?;
        tcp.set_write_timeout(Some(left))?;
        let (read, written) = conn.complete_io(tcp)?;
        if read == 0 && written == 0 && conn.is_handshaking() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    // Whatever the handshake left to send (a TLS 1.3 server's session tickets).
    send_records(conn, tcp)?;
    tcp.set_read_timeout(None)?;
    tcp.set_write_timeout(None)?;
    Ok(())
}

/// Serves a TLS connection accepted by a listener: runs the handshake on a thread of its own
/// (within the header timeout, never on the accepting thread; at most `--max-connections` at
/// once), then calls `serve` on that thread with the connection's [`Socket`] (a plain one for a
/// plain client on a port serving both). A client that fails or stalls the handshake is
/// dropped; plain HTTP gets a `400` (see [`accept`]).
pub fn spawn_accept(
    tcp: TcpStream,
    tls: TlsListen,
    config: &crate::config::Config,
    serve: impl FnOnce(Socket) + Send + 'static,
) {
    // Handshakes in progress, process-wide: a flood of connections that never finish theirs
    // holds at most `--max-connections` threads (each for at most the header timeout).
    static HANDSHAKING: AtomicUsize = AtomicUsize::new(0);
    if HANDSHAKING.fetch_add(1, Ordering::SeqCst) >= config.max_connections {
        HANDSHAKING.fetch_sub(1, Ordering::SeqCst);
        log::warn!(
            "{} TLS handshakes in progress: closing a new connection",
            config.max_connections
        );
        return;
    }
    let deadline = Instant::now() + config.header_timeout;
    let spawned = std::thread::Builder::new()
        .name("ccserve-tls-accept".into())
        .stack_size(config.thread_stack_size)
        .spawn(move || {
            let accepted = accept(tcp, &tls, deadline);
            HANDSHAKING.fetch_sub(1, Ordering::SeqCst);
            match accepted {
                Ok(Accepted::Ready(socket)) => serve(*socket),
                Ok(Accepted::Plain(tcp)) => serve(Socket::plain(tcp)),
                Ok(Accepted::PlainHttp) => log::debug!("plain HTTP on a TLS port: answered 400"),
                Err(e) => log::debug!("TLS handshake failed: {e}"),
            }
        });
    if let Err(e) = spawned {
        HANDSHAKING.fetch_sub(1, Ordering::SeqCst);
        log::warn!("cannot start a TLS handshake thread: {e}");
    }
}

/// Connects a client: verifies the server `host` on `tcp` within `deadline`, and returns the
/// engine's end of the connection (plain bytes; `stack` sizes the pump threads).
pub fn connect(
    tcp: TcpStream,
    host: &str,
    ca_file: Option<&Path>,
    deadline: Instant,
    stack: usize,
    write_timeout: Duration,
) -> Result<TcpStream, String> {
    let config = client_config(ca_file)?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| format!("'{host}' is not a valid host name for TLS"))?;
    let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut conn = Connection::from(conn);
    let mut tcp = tcp;
    handshake(&mut conn, &mut tcp, deadline).map_err(|e| client_error(&e))?;
    let socket = Arc::new(Socket::tls(tcp, Session::new(conn)));
    pumped(socket, stack, write_timeout).map_err(|e| format!("TLS: {e}"))
}

/// How a listener serves TLS.
#[derive(Debug, Clone)]
pub struct TlsListen {
    /// The certificate presented.
    pub cert: Arc<ServerTls>,
    /// Plain HTTP on the same port too, told apart by the first byte (lua-http's `tls = nil`).
    pub plain_too: bool,
}

/// What a server's TLS handshake came to.
pub enum Accepted {
    /// The connection, its handshake done.
    Ready(Box<Socket>),
    /// A plain connection on a port that serves both: the socket itself.
    Plain(TcpStream),
    /// The client sent plain HTTP to a TLS-only port: it was answered `400` with a note.
    PlainHttp,
}

/// The body of the answer to plain HTTP sent to a TLS port.
const PLAIN_TO_TLS: &str = "This port serves HTTPS: use https:// to reach it.";

/// Runs a server handshake on `tcp` within `deadline` (the header timeout). A client whose first
/// bytes are a plain HTTP request line gets a `400` saying to use `https://`; one that stalls
/// or fails the handshake gets an error (the caller drops it).
pub fn accept(tcp: TcpStream, tls: &TlsListen, deadline: Instant) -> io::Result<Accepted> {
    // As on plain connections: a response must not wait for the client's delayed ACK of the
    // record before it (session tickets, then the first response, are two writes).
    let _ = tcp.set_nodelay(true);
    let mut tcp = tcp;
    // A TLS client starts with a handshake record (0x16); a plain request with a method name.
    let mut first = [0u8; 1];
    tcp.set_read_timeout(Some(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1)),
    ))?;
    let peeked = tcp.peek(&mut first)?;
    if tls.plain_too && (peeked == 0 || first[0] != 0x16) {
        tcp.set_read_timeout(None)?;
        return Ok(Accepted::Plain(tcp));
    }
    if peeked == 1 && first[0].is_ascii_alphabetic() {
        let _ = tcp.set_write_timeout(Some(Duration::from_secs(1)));
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{PLAIN_TO_TLS}",
            PLAIN_TO_TLS.len()
        );
        let _ = tcp.write_all(answer.as_bytes());
        let _ = tcp.shutdown(Shutdown::Write);
        // Read what the client sent before closing: closing with unread bytes would reset the
        // connection, and the client could lose the answer.
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match tcp.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
        return Ok(Accepted::PlainHttp);
    }
    let conn = ServerConnection::new(tls.cert.config()).map_err(io::Error::other)?;
    let mut conn = Connection::from(conn);
    handshake(&mut conn, &mut tcp, deadline)?;
    Ok(Accepted::Ready(Box::new(Socket::tls(
        tcp,
        Session::new(conn),
    ))))
}

/// One connection's TLS session, shared by whichever thread reads or writes the connection at
/// the time (its connection thread, the Lua thread for a parked connection, or the pump threads
/// of [`pumped`]). The lock is held for the session's work only, never while a read waits for the
/// peer.
pub struct Session {
    inner: Mutex<Inner>,
}

struct Inner {
    conn: Connection,
    /// Decrypted bytes not yet read, from `at`.
    plain: Vec<u8>,
    at: usize,
    /// The peer has closed (with `close_notify` or not): nothing more will be decrypted.
    eof: bool,
    /// The session failed (a bad record): every read from now on fails too.
    failed: bool,
}

impl Session {
    fn new(conn: Connection) -> Session {
        let mut conn = conn;
        // Application data that arrived with the end of the handshake (a client sends its request
        // right behind its Finished) is already decrypted in the session: it is read first.
        let mut plain = Vec::new();
        let _ = conn.reader().read_to_end(&mut plain);
        Session {
            inner: Mutex::new(Inner {
                conn,
                plain,
                at: 0,
                eof: false,
                failed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update; the session then fails
        // its next record, which ends the connection.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads decrypted bytes, blocking on `tcp` as its read timeout allows; `Ok(0)` once the
    /// peer has closed. Sends first what the session has to send (an alert, a key update's
    /// answer, records [`send_nonblocking`](Self::send_nonblocking) left).
    // Never inlined: its buffer would otherwise be in the frame of every connection thread's
    // reads, and probing that frame keeps 8 KiB more of each plain connection's stack resident.
    #[inline(never)]
    pub fn read(&self, tcp: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        let mut raw = [0u8; PIECE];
        loop {
            {
                let mut s = self.lock();
                let n = s.take(buf);
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                s.flush(tcp)?;
                if s.failed {
                    return Err(io::ErrorKind::InvalidData.into());
                }
                if s.eof {
                    return Ok(0);
                }
            }
            let n = match (&*tcp).read(&mut raw) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut s = self.lock();
            let fed = s.feed(&raw[..n]);
            // The alert of a failed session goes out before the error.
            let _ = s.flush(tcp);
            fed?;
        }
    }

    /// Writes all of `buf` (after what the session still has to send), blocking on `tcp` as its
    /// write timeout allows.
    pub fn write_all(&self, tcp: &TcpStream, buf: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        s.flush(tcp)?;
        let mut rest = buf;
        while !rest.is_empty() {
            let n = s.conn.writer().write(rest)?;
            s.flush(tcp)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Encrypts as much of `bytes` as the session takes and sends the records without blocking;
    /// returns how many bytes it took. Records the socket did not take stay in the session
    /// ([`pending`](Self::pending)); nothing is taken while earlier ones wait, so that the
    /// connection thread sends everything in order.
    pub fn send_nonblocking(&self, tcp: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
        let mut s = self.lock();
        if s.conn.wants_write() {
            return Ok(0);
        }
        let mut taken = 0;
        while taken < bytes.len() {
            let n = s.conn.writer().write(&bytes[taken..])?;
            taken += n;
            let mut out = NonBlocking(tcp);
            while s.conn.wants_write() {
                match s.conn.write_tls(&mut out) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(taken),
                    Err(e) => return Err(e),
                }
            }
            if n == 0 {
                break;
            }
        }
        Ok(taken)
    }

    /// Whether records are waiting to be sent.
    pub fn pending(&self) -> bool {
        self.lock().conn.wants_write()
    }

    /// Whether decrypted bytes are waiting to be read.
    pub fn holds_input(&self) -> bool {
        let s = self.lock();
        s.at < s.plain.len()
    }

    /// Reads what `tcp` has without blocking into `raw` (`WouldBlock` when nothing came) and
    /// appends what it decrypts to `plain`. Returns whether the connection is still open.
    pub fn recv_nonblocking(
        &self,
        tcp: &TcpStream,
        raw: &mut [std::mem::MaybeUninit<u8>],
        plain: &mut Vec<u8>,
    ) -> io::Result<bool> {
        let bytes = crate::net::recv_nonblocking(tcp, raw)?;
        let mut s = self.lock();
        s.feed(bytes)?;
        plain.extend_from_slice(&s.plain[s.at..]);
        s.plain.clear();
        s.at = 0;
        // Anything the session must answer is for the connection thread to send.
        Ok(!s.eof && !s.conn.wants_write())
    }

    /// Sends `close_notify` (as far as the socket takes it within its write timeout).
    pub fn close(&self, tcp: &TcpStream) {
        let mut s = self.lock();
        s.conn.send_close_notify();
        let _ = s.flush(tcp);
    }
}

impl Inner {
    /// Moves decrypted bytes into `buf`.
    fn take(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.plain.len() - self.at);
        buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        if self.at == self.plain.len() {
            self.plain.clear();
            self.at = 0;
        }
        n
    }

    /// Feeds records read off the socket to the session (none: the peer closed), keeping what
    /// they decrypt to. A bad record fails the session, with its alert queued.
    fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.failed {
            return Err(io::ErrorKind::InvalidData.into());
        }
        let mut rest = bytes;
        loop {
            // `read_tls` refuses more only while undelivered plain bytes pass the session's
            // limit, and they are all taken out after each step.
            let got = self.conn.read_tls(&mut rest)?;
            if let Err(e) = self.conn.process_new_packets() {
                log::debug!("TLS session failed: {e}");
                self.failed = true;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            match self.conn.reader().read_to_end(&mut self.plain) {
                // `close_notify`, or the socket's end without one.
                Ok(_) => self.eof = true,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => self.eof = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if rest.is_empty() || got == 0 {
                return Ok(());
            }
        }
    }

    /// Sends every record the session has ready, blocking on `tcp` as its write timeout allows.
    fn flush(&mut self, tcp: &TcpStream) -> io::Result<()> {
        send_records(&mut self.conn, tcp)
    }
}

/// Sends every record `conn` has ready, blocking on `tcp` as its write timeout allows.
fn send_records(conn: &mut Connection, tcp: &TcpStream) -> io::Result<()> {
    let mut out = tcp;
    while conn.wants_write() {
        if conn.write_tls(&mut out)? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// A socket written without blocking: `WouldBlock` when it takes nothing.
struct NonBlocking<'a>(&'a TcpStream);

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match crate::net::send_nonblocking(self.0, &[buf])? {
            0 if !buf.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hands a TLS connection to code that drives a plain socket itself (the WebSocket engine, the
/// HTTP client): returns the far end of a socket pair, with one thread decrypting what the peer
/// sends into the pair and one encrypting what comes out of it (`stack`: their stack size; a
/// peer that reads nothing holds a write at most `write_timeout`).
pub fn pumped(
    socket: Arc<crate::socket::Socket>,
    stack: usize,
    write_timeout: Duration,
) -> io::Result<TcpStream> {
    socket.tcp().set_write_timeout(Some(write_timeout))?;
    socket.tcp().set_read_timeout(None)?;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let ours_out = ours.try_clone()?;
    let out_socket = socket.clone();
    std::thread::Builder::new()
        .name("ccserve-tls-in".into())
        .stack_size(stack)
        .spawn(move || pump_in(&socket, ours))?;
    std::thread::Builder::new()
        .name("ccserve-tls-out".into())
        .stack_size(stack)
        .spawn(move || pump_out(ours_out, &out_socket))?;
    Ok(crate::net::unix_as_tcp(theirs))
}

/// Peer → pair: decrypted bytes into the pair. At the peer's end (or a broken session), shuts
/// the pair's write side so the engine sees the connection end.
fn pump_in(socket: &crate::socket::Socket, mut pair: std::os::unix::net::UnixStream) {
    let mut buf = vec![0u8; PIECE];
    loop {
        let n = match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if pair.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = pair.shutdown(Shutdown::Write);
}

/// Pair → peer: what the engine writes, encrypted. At the engine's end, sends `close_notify`
/// and shuts the socket.
fn pump_out(mut pair: std::os::unix::net::UnixStream, socket: &crate::socket::Socket) {
    let mut buf = vec![0u8; PIECE];
    loop {
        let n = match pair.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if socket.write_all(&buf[..n]).is_err() {
            let _ = socket.tcp().shutdown(Shutdown::Both);
            let _ = pair.shutdown(Shutdown::Both);
            return;
        }
    }
    let _ = socket.shutdown_write();
    let _ = socket.tcp().shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A TLS connection over loopback after its handshake: our server side (with a small send
    /// buffer, so that the socket fills quickly) and a rustls client.
    fn connected() -> (Socket, rustls::StreamOwned<ClientConnection, TcpStream>) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = made.cert.der().clone();
        let key = PrivateKeyDer::try_from(made.key_pair.serialize_der()).unwrap();
        let server_config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        let client_config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client_tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client_tcp
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let (server_tcp, _) = listener.accept().unwrap();
        socket2::SockRef::from(&server_tcp)
            .set_send_buffer_size(4096)
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let client = ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut client = rustls::StreamOwned::new(client, client_tcp);
        let server = std::thread::spawn(move || {
            let mut conn =
                Connection::from(ServerConnection::new(Arc::new(server_config)).unwrap());
            let mut tcp = server_tcp;
            handshake(
                &mut conn,
                &mut tcp,
                Instant::now() + Duration::from_secs(20),
            )
            .unwrap();
            Socket::tls(tcp, Session::new(conn))
        });
        // The client's side of the handshake runs on its first write.
        client.write_all(b"hello").unwrap();
        client.flush().unwrap();
        let server = server.join().unwrap();
        let mut hello = [0u8; 5];
        let mut got = 0;
        while got < 5 {
            got += server.read(&mut hello[got..]).unwrap();
        }
        assert_eq!(&hello, b"hello");
        (server, client)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn records_a_send_without_blocking_left_go_out_first_with_the_next_write() {
        let (server, mut client) = connected();
        let data = pattern(2_000_000);
        // The Lua thread's kind of write, into a socket the client is not reading: the session
        // keeps the records the socket did not take.
        let mut taken = server.send_nonblocking(&data[..60_000]).unwrap();
        assert!(
            server.pending(),
            "a full socket left nothing in the session"
        );
        // With records waiting, nothing more is taken (they would go out of order).
        assert_eq!(
            server.send_nonblocking(&data[taken..taken + 10]).unwrap(),
            0
        );
        let server = Arc::new(server);
        let writer = server.clone();
        let rest = data.clone();
        let sender = std::thread::spawn(move || {
            // The connection thread: its next write sends the waiting records first.
            writer.write_all(&rest[taken..]).unwrap();
            assert!(!writer.pending());
        });
        let mut got = vec![0u8; data.len()];
        client.read_exact(&mut got).unwrap();
        sender.join().unwrap();
        assert!(got == data, "the bytes differ");
        // An empty write sends what is waiting, too.
        taken = server.send_nonblocking(&data[..60_000]).unwrap();
        assert_eq!(taken, 60_000);
        let flusher = server.clone();
        let flush = std::thread::spawn(move || flusher.write_all(&[]).unwrap());
        let mut got = vec![0u8; 60_000];
        client.read_exact(&mut got).unwrap();
        flush.join().unwrap();
        assert!(got[..] == data[..60_000], "the bytes differ");
    }

    #[test]
    fn decrypted_bytes_a_read_did_not_take_wait_in_the_session() {
        let (server, mut client) = connected();
        let data = pattern(100_000);
        client.write_all(&data).unwrap();
        client.flush().unwrap();
        let mut first = [0u8; 10];
        let mut n = 0;
        while n == 0 {
            n = server.read(&mut first).unwrap();
        }
        // A record is up to 16 KiB: the rest of it is decrypted and held, not on the socket.
        assert!(server.holds_input(), "nothing held after a 10-byte read");
        let mut got = first[..n].to_vec();
        let mut buf = vec![0u8; 7_000];
        while got.len() < data.len() {
            let n = server.read(&mut buf).unwrap();
            assert!(n > 0, "early end after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == data, "the bytes differ");
        assert!(!server.holds_input());
    }

    #[test]
    fn reads_without_blocking_decrypt_what_came_and_see_the_close() {
        use crate::socket::Received;
        let (server, mut client) = connected();
        let mut raw = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut plain = Vec::new();
        assert_eq!(
            server
                .recv_nonblocking(&mut raw, &mut plain)
                .err()
                .map(|e| e.kind()),
            Some(io::ErrorKind::WouldBlock)
        );
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        client.flush().unwrap();
        // Bounded: the record is on its way over loopback.
        let deadline = Instant::now() + Duration::from_secs(20);
        let got = loop {
            assert!(Instant::now() < deadline, "the record never came");
            let mut plain = Vec::new();
            match server.recv_nonblocking(&mut raw, &mut plain) {
                Ok(Received::Bytes(b)) => break b.to_vec(),
                Ok(Received::Nothing) => {}
                Ok(Received::Closed) => panic!("closed"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    crate::net::readable_now(server.tcp());
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
        client.conn.send_close_notify();
        client.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "the close never came");
            let mut plain = Vec::new();
            match server.recv_nonblocking(&mut raw, &mut plain) {
                Ok(Received::Closed) => break,
                Ok(Received::Nothing) => {}
                Ok(Received::Bytes(b)) => panic!("bytes after the request: {b:?}"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    }
}
