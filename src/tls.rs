//! TLS for servers and clients, with rustls (the `ring` provider), outside the HTTP and WebSocket
//! engines.
//!
//! The engines serve plain sockets, and much of their speed comes from that (the Lua thread
//! parks idle connections in its `epoll` set and writes small responses straight on the socket,
//! `src/lane.rs`, `src/http/direct.rs`). A TLS connection is handed to them as the far end of a
//! socket pair instead: once the handshake is done, two pump threads move bytes between the pair
//! and the TLS session (one decrypts what the peer sends, one encrypts what the engine writes).
//! The engines see a plain connection with the peer's real addresses; every limit, timeout and
//! API works unchanged on it. The price is one more hop per direction (README, "TLS").
//!
//! Servers: [`ServerTls`] holds the certificate and key given on the command line and re-reads
//! them when their files change (checked at most once a second, at the next handshake), so a
//! renewed certificate is used without a restart; connections already open keep theirs.
//! [`accept`] runs the handshake within the header timeout. Clients: [`connect`] verifies the
//! server against the system's trust store (plus `--ca-file`), and reports a failed
//! verification as `Certificate verify failed: ...`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection,
};

/// Largest piece moved at once between a socket and the TLS session. Half a TLS record: each
/// pump's buffer is resident for as long as its connection lives.
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
    while conn.wants_write() {
        conn.write_tls(tcp)?;
    }
    tcp.set_read_timeout(None)?;
    tcp.set_write_timeout(None)?;
    Ok(())
}

/// Serves a TLS connection accepted by a listener: runs the handshake on a thread of its own
/// (within the header timeout, never on the accepting thread; at most `--max-connections` at
/// once), then hands the plain end to
/// `serve` with the peer's and local addresses (a plain connection on a port serving both: the
/// socket itself, and no addresses). A client that fails or stalls the handshake is
/// dropped; plain HTTP gets a `400` (see [`accept`]).
pub fn spawn_accept(
    tcp: TcpStream,
    tls: TlsListen,
    config: &crate::config::Config,
    serve: impl FnOnce(TcpStream, Option<(Option<SocketAddr>, Option<SocketAddr>)>) + Send + 'static,
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
    let (stack, write_timeout) = (config.thread_stack_size, config.write_timeout);
    let spawned = std::thread::Builder::new()
        .name("ccserve-tls-accept".into())
        .stack_size(stack)
        .spawn(move || {
            let accepted = accept(tcp, &tls, deadline, stack, write_timeout);
            HANDSHAKING.fetch_sub(1, Ordering::SeqCst);
            match accepted {
                Ok(Accepted::Ready(inner, peer, local, inbound)) => {
                    serve(inner, Some((peer, local)));
                    // This thread did the handshake; it goes on as the inbound pump.
                    inbound.run();
                }
                Ok(Accepted::Plain(tcp)) => serve(tcp, None),
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
    let (inner, inbound) =
        pump(tcp, conn, stack, write_timeout).map_err(|e| format!("TLS: {e}"))?;
    std::thread::Builder::new()
        .name("ccserve-tls-in".into())
        .stack_size(stack)
        .spawn(move || inbound.run())
        .map_err(|e| format!("TLS: cannot start a thread: {e}"))?;
    Ok(inner)
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
    /// The engine's end of the connection, the peer's and local addresses, and the inbound
    /// pump, to run on the caller's thread.
    Ready(TcpStream, Option<SocketAddr>, Option<SocketAddr>, Inbound),
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
pub fn accept(
    tcp: TcpStream,
    tls: &TlsListen,
    deadline: Instant,
    stack: usize,
    write_timeout: Duration,
) -> io::Result<Accepted> {
    let peer = tcp.peer_addr().ok();
    let local = tcp.local_addr().ok();
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
    let (inner, inbound) = pump(tcp, conn, stack, write_timeout)?;
    Ok(Accepted::Ready(inner, peer, local, inbound))
}

/// The TLS session of one connection and the socket its records travel on; the two pump threads
/// take turns with it.
struct Session {
    conn: Connection,
    tcp: TcpStream,
}

impl Session {
    /// Sends every record the session has ready.
    fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.tcp)?;
        }
        Ok(())
    }
}

/// Starts the outbound pump thread for a connection whose handshake is done; returns the
/// engine's end of the socket pair and the inbound pump for the caller to run.
/// The inbound half of a connection's pumps (peer → engine), not started yet.
pub struct Inbound {
    tcp: TcpStream,
    pair: std::os::unix::net::UnixStream,
    session: Arc<Mutex<Session>>,
}

impl Inbound {
    /// Runs the pump until the connection ends.
    pub fn run(self) {
        pump_in(self.tcp, self.pair, &self.session)
    }
}

fn pump(
    tcp: TcpStream,
    conn: Connection,
    stack: usize,
    write_timeout: Duration,
) -> io::Result<(TcpStream, Inbound)> {
    // A peer that reads nothing must not hold the session (and so both pumps) forever.
    tcp.set_write_timeout(Some(write_timeout))?;
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let mut conn = conn;
    // Application data that arrived with the end of the handshake (a client sends its request
    // right behind its Finished) is already decrypted in the session: it goes first.
    let mut early = Vec::new();
    let _ = conn.reader().read_to_end(&mut early);
    if !early.is_empty() {
        ours.write_all(&early)?;
    }
    let tcp_read = tcp.try_clone()?;
    let ours_read = ours.try_clone()?;
    let session = Arc::new(Mutex::new(Session { conn, tcp }));
    let inbound = Inbound {
        tcp: tcp_read,
        pair: ours,
        session: session.clone(),
    };
    std::thread::Builder::new()
        .name("ccserve-tls-out".into())
        .stack_size(stack)
        .spawn(move || pump_out(ours_read, &session))?;
    Ok((crate::net::unix_as_tcp(theirs), inbound))
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|p| p.into_inner())
}

/// Peer → engine: reads records off the socket, decrypts them, and writes the plain bytes into
/// the pair. At the peer's end (or a broken session), shuts the pair's write side so the engine
/// sees the connection end.
fn pump_in(mut tcp: TcpStream, mut pair: std::os::unix::net::UnixStream, session: &Mutex<Session>) {
    let mut records = vec![0u8; PIECE];
    let mut plain = Vec::new();
    loop {
        let n = match tcp.read(&mut records) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        plain.clear();
        let ok = {
            let mut s = lock(session);
            let mut fed = &records[..n];
            let mut ok = true;
            while !fed.is_empty() && ok {
                ok = match s.conn.read_tls(&mut fed) {
                    Ok(_) => match s.conn.process_new_packets() {
                        Ok(state) => {
                            let want = state.plaintext_bytes_to_read();
                            if want > 0 {
                                let at = plain.len();
                                plain.resize(at + want, 0);
                                let got = s.conn.reader().read(&mut plain[at..]).unwrap_or(0);
                                plain.truncate(at + got);
                            }
                            !state.peer_has_closed()
                        }
                        Err(e) => {
                            log::debug!("TLS session failed: {e}");
                            let _ = s.flush(); // the alert
                            false
                        }
                    },
                    Err(_) => false,
                };
            }
            // Key updates and the like the session must answer.
            ok && s.flush().is_ok()
        };
        if !plain.is_empty() && pair.write_all(&plain).is_err() {
            break;
        }
        if !ok {
            break;
        }
    }
    let _ = pair.shutdown(Shutdown::Write);
}

/// Engine → peer: reads what the engine writes into the pair, encrypts it, and sends the
/// records. At the engine's end, sends `close_notify` and shuts the socket.
fn pump_out(mut pair: std::os::unix::net::UnixStream, session: &Mutex<Session>) {
    let mut buf = vec![0u8; PIECE];
    loop {
        let n = match pair.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut s = lock(session);
        if s.conn.writer().write_all(&buf[..n]).is_err() || s.flush().is_err() {
            let _ = s.tcp.shutdown(Shutdown::Both);
            let _ = pair.shutdown(Shutdown::Both);
            return;
        }
    }
    let mut s = lock(session);
    s.conn.send_close_notify();
    let _ = s.flush();
    let _ = s.tcp.shutdown(Shutdown::Both);
}
