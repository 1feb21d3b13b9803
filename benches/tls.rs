//! HTTPS: ccserve serving TLS (`--tls-cert`/`--tls-key`, `http.listen(port, handler, {tls =
//! true})`, `src/tls.rs`) against a raw rustls server, in one invocation.
//!
//! - **Certificates**, generated at start with rcgen into a directory under the target dir
//!   (removed at the end; never committed): a bench CA and an ECDSA P-256 server certificate for
//!   `localhost` and `127.0.0.1` signed by it. Both servers load the same PEM files.
//! - **The servers.** ccserve (the release binary) running `bench/tls_hello.lua`, the hello world
//!   of `examples/hello.lua` on a TLS listener. The baseline: a raw rustls 0.23 server (the `ring`
//!   provider, rustls's safe default versions, ALPN `http/1.1`, the same configuration ccserve
//!   builds), one thread per connection over a blocking `rustls::StreamOwned<ServerConnection,
//!   TcpStream>` with `TCP_NODELAY` (as ccserve's plain connections), reading each request head
//!   up to `\r\n\r\n`, parsing it with httparse, and answering the bytes ccserve sends
//!   (`Content-Type: text/plain`, `Date`, `Connection: keep-alive` or `close`,
//!   `Content-Length: 14`, `Hello, world!\n`); on `Connection: close` it sends `close_notify` and
//!   closes, as ccserve does. The baseline runs in a child process: this bench binary re-executed
//!   with `CCSERVE_BENCH_TLS_BASELINE` set, so both servers' CPU time comes from their own
//!   `/proc/PID/stat` the same way, and neither shares a process with wrk's sampler or the bench.
//!   Before measuring, each server is checked with a verifying rustls client (the bench CA,
//!   server name `localhost`): two keep-alive `GET /` on one connection and one `Connection:
//!   close` GET, each 200 with the hello body, and the header names of the two servers' responses
//!   must be the same. Whether the server then closes the connection within 2 s is printed on
//!   stderr (wrk closes its side itself, so the measurements do not depend on it).
//! - **Workloads**, wrk over `https://127.0.0.1:PORT/` (wrk's OpenSSL client does not verify
//!   certificates and does not resume sessions, so every connection is a full handshake):
//!   `wrk --latency -t1 -c1` and `-t2 -c32` (keep-alive), and `-t2 -c32 -H "Connection: close"`,
//!   where every request is a new TCP connection and TLS handshake (requests/s = new connections
//!   per second). For each workload and each round the two servers run one after the other, the
//!   order alternating every round. Reported: median req/s and every round's, median p50 / p99,
//!   socket errors and non-2xx (summed over rounds), the server's peak thread count (sampled
//!   every 20 ms), and its CPU time per request: user + system time of the whole server process
//!   (`utime` + `stime` of `/proc/PID/stat`, all threads, ended ones included) over the run,
//!   divided by the requests wrk completed; then the ratios ccserve / rustls.
//! - **RSS per idle connection**, each in a fresh server process: ccserve over TLS, ccserve over
//!   plain HTTP (`examples/hello.lua`, for comparison), and the rustls baseline. After one
//!   warm-up request on a connection that is then closed and the thread count has settled, the
//!   idle `VmRSS` is read; then 200 connections are opened (8 client threads; TLS ones verified,
//!   as above), each sends one keep-alive `GET /` and reads the whole response, and is held open.
//!   The reading is taken once the thread count is exactly idle + 200 × (the threads one
//!   connection adds, learnt from the first, after settling), as the maximum of five samples
//!   100 ms apart, and the thread count is checked again afterwards (ccserve closes idle
//!   keep-alive connections after 15 s; the reading is taken well within that).
//!
//! Either server exiting, wrk failing, or a check failing, fails the bench. Without the `tls`
//! feature the bench only says it needs it.
//!
//! Run: `cargo bench --bench tls` (or `bash bench/run.sh` for all benches). Needs `wrk` built
//! with TLS (Debian's is). Knobs: `CCSERVE_BENCH_SECONDS` (wrk `-d`, default 5),
//! `CCSERVE_BENCH_ROUNDS` (default 3), `CCSERVE_BENCH_BIN`. Results: stdout and
//! `target/bench-results/tls.md`.

mod common;

#[cfg(not(feature = "tls"))]
fn main() {
    println!(
        "benches/tls.rs needs the tls feature (on by default): \
         cargo bench --bench tls --features tls"
    );
}

#[cfg(feature = "tls")]
fn main() {
    tls_bench::main();
}

#[cfg(feature = "tls")]
#[path = "../tests/common/civil.rs"]
mod civil;

#[cfg(feature = "tls")]
mod tls_bench {
    use super::common::wrk::{row_cells, run_wrk_url, WrkSample};
    use super::common::{self, median_duration, median_of, ratio, Ccserve, ProcStatus, WAIT};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{
        ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
    };
    use std::fmt::Write as _;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    /// Set (to the directory of the PEM files) in the environment of the re-executed bench
    /// binary that serves the baseline.
    const BASELINE_ENV: &str = "CCSERVE_BENCH_TLS_BASELINE";
    const SCRIPT: &str = "bench/tls_hello.lua";
    const PLAIN_SCRIPT: &str = "examples/hello.lua";
    const BODY: &[u8] = b"Hello, world!\n";
    /// Idle connections held for the RSS reading.
    const HELD: u64 = 200;
    /// Client threads opening them.
    const OPENERS: u64 = 8;
    /// How long the check waits for a server to close after a `Connection: close` response.
    const CLOSE_WAIT: Duration = Duration::from_secs(2);

    /// One wrk configuration.
    struct Workload {
        label: &'static str,
        threads: u32,
        connections: u32,
        /// `-H "Connection: close"`: a new connection (and handshake) per request.
        close: bool,
    }

    const WORKLOADS: [Workload; 3] = [
        Workload {
            label: "keep-alive `-t1 -c1`",
            threads: 1,
            connections: 1,
            close: false,
        },
        Workload {
            label: "keep-alive `-t2 -c32`",
            threads: 2,
            connections: 32,
            close: false,
        },
        Workload {
            label: "handshakes: `-t2 -c32 -H \"Connection: close\"`",
            threads: 2,
            connections: 32,
            close: true,
        },
    ];

    /// Table labels: the server under test first, the reference of the ratios second.
    const SERVERS: [&str; 2] = [
        "ccserve (`--tls-cert … bench/tls_hello.lua`)",
        "raw rustls (`StreamOwned`, thread per connection)",
    ];

    // ---------------------------------------------------------------- certificates

    /// The bench CA and the server's certificate and key, as PEM files in a directory that is
    /// removed when this is dropped.
    struct Keys {
        dir: PathBuf,
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    }

    impl Keys {
        fn generate() -> Keys {
            use rcgen::{
                BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
                KeyPair, KeyUsagePurpose,
            };
            let ca_key = KeyPair::generate().expect("generate the CA key");
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            ca_params
                .distinguished_name
                .push(DnType::CommonName, "ccserve bench CA");
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca_params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let ca = ca_params.self_signed(&ca_key).expect("self-sign the CA");

            let key = KeyPair::generate().expect("generate the server key");
            // rcgen makes "127.0.0.1" an IP address SAN.
            let mut params =
                CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                    .expect("server certificate params");
            params
                .distinguished_name
                .push(DnType::CommonName, "localhost");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let cert = params
                .signed_by(&key, &ca, &ca_key)
                .expect("sign the server certificate");

            let dir = common::results_dir().join(format!("tls-keys-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            let keys = Keys {
                ca: dir.join("ca.pem"),
                cert: dir.join("cert.pem"),
                key: dir.join("key.pem"),
                dir,
            };
            write_file(&keys.ca, &ca.pem(), 0o644);
            write_file(&keys.cert, &cert.pem(), 0o644);
            write_file(&keys.key, &key.serialize_pem(), 0o600);
            keys
        }
    }

    fn write_file(path: &Path, text: &str, mode: u32) {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        file.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    impl Drop for Keys {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// The baseline's configuration: what ccserve builds (`src/tls.rs`, `server_config`).
    fn server_config(cert: &Path, key: &Path) -> Arc<ServerConfig> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect())
            .unwrap_or_else(|e| panic!("read {}: {e}", cert.display()));
        let key = PrivateKeyDer::from_pem_file(key)
            .unwrap_or_else(|e| panic!("read {}: {e}", key.display()));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("rustls's default versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the server certificate and its key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A client trusting only the bench CA.
    fn client_config(ca: &Path) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .unwrap_or_else(|e| panic!("read {}: {e}", ca.display()))
        {
            roots
                .add(cert.expect("a CA certificate"))
                .expect("add the bench CA");
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("rustls's default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    // ---------------------------------------------------------------- the baseline server

    /// The baseline process's `main`: serves on a free port of 127.0.0.1, prints the port on
    /// stdout, and exits when its stdin closes (the bench ended, however it ended).
    fn run_baseline(dir: &Path) -> ! {
        let config = server_config(&dir.join("cert.pem"), &dir.join("key.pem"));
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the rustls baseline");
        let port = listener.local_addr().expect("baseline address").port();
        println!("{port}");
        std::io::stdout()
            .flush()
            .expect("print the baseline's port");
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            let config = config.clone();
            let _ = std::thread::Builder::new()
                .name("tls-base-conn".into())
                .spawn(move || serve_baseline(tcp, config));
        }
        std::process::exit(0)
    }

    /// One baseline connection: handshake (on the first read), then request heads answered one
    /// at a time until the client closes or asks to.
    fn serve_baseline(tcp: TcpStream, config: Arc<ServerConfig>) {
        let _ = tcp.set_nodelay(true);
        let Ok(conn) = ServerConnection::new(config) else {
            return;
        };
        let mut tls = StreamOwned::new(conn, tcp);
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                if buf.len() > 64 * 1024 {
                    return;
                }
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            let keep_alive = match request.parse(&buf[..head_end]) {
                Ok(httparse::Status::Complete(_)) => {
                    let connection = request
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("connection"))
                        .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase());
                    match request.version {
                        Some(1) => connection.as_deref() != Some("close"),
                        _ => connection.as_deref() == Some("keep-alive"),
                    }
                }
                _ => return,
            };
            buf.drain(..head_end);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: {}\r\nConnection: {}\r\n\
                 Content-Length: {}\r\n\r\n",
                http_date(SystemTime::now()),
                if keep_alive { "keep-alive" } else { "close" },
                BODY.len()
            );
            let mut bytes = response.into_bytes();
            bytes.extend_from_slice(BODY);
            if tls.write_all(&bytes).is_err() {
                return;
            }
            if !keep_alive {
                tls.conn.send_close_notify();
                let _ = tls.conn.complete_io(&mut tls.sock);
                let _ = tls.sock.shutdown(Shutdown::Both);
                return;
            }
        }
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110's IMF-fixdate).
    fn http_date(now: SystemTime) -> String {
        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (year, month, day, rem, weekday) = super::civil::civil(secs);
        format!(
            "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
            DAYS[weekday],
            MONTHS[(month - 1) as usize],
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }

    /// The baseline process, killed (and reaped) when dropped.
    struct Baseline {
        child: Child,
        port: u16,
    }

    impl Baseline {
        fn start(keys: &Keys) -> Baseline {
            let exe = std::env::current_exe().expect("the bench binary's path");
            let mut child = Command::new(&exe)
                .env(BASELINE_ENV, &keys.dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("start the baseline ({}): {e}", exe.display()));
            let stdout = child.stdout.take().expect("the baseline's stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
            let line = rx.recv_timeout(WAIT).unwrap_or_default();
            let Ok(port) = line.trim().parse::<u16>() else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the rustls baseline did not print its port (got {line:?})");
            };
            Baseline { child, port }
        }
    }

    impl Drop for Baseline {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A server process under measurement.
    trait Server {
        fn pid(&self) -> u32;
        fn port(&self) -> u16;
        /// `Some(why)` if the process has exited.
        fn exited(&mut self) -> Option<String>;
    }

    impl Server for Ccserve {
        fn pid(&self) -> u32 {
            Ccserve::pid(self)
        }
        fn port(&self) -> u16 {
            self.port
        }
        fn exited(&mut self) -> Option<String> {
            Ccserve::exited(self)
        }
    }

    impl Server for Baseline {
        fn pid(&self) -> u32 {
            self.child.id()
        }
        fn port(&self) -> u16 {
            self.port
        }
        fn exited(&mut self) -> Option<String> {
            let status = self.child.try_wait().ok()??;
            Some(format!("the rustls baseline exited ({status})"))
        }
    }

    fn start_ccserve_tls(keys: &Keys) -> Ccserve {
        let (cert, key) = (keys.cert.to_string_lossy(), keys.key.to_string_lossy());
        Ccserve::start_with_flags(&["--tls-cert", &cert, "--tls-key", &key], SCRIPT, &[])
    }

    // ---------------------------------------------------------------- clients

    /// A client connection: plain TCP or TLS.
    trait Conn: Read + Write + Send {}
    impl<T: Read + Write + Send> Conn for T {}

    type TlsClient = StreamOwned<ClientConnection, TcpStream>;

    /// Connects to 127.0.0.1:`port` as `localhost` and completes the handshake (verifying the
    /// certificate against the bench CA), checking ALPN chose `http/1.1`.
    fn tls_connect(port: u16, config: &Arc<ClientConfig>) -> TlsClient {
        let tcp = common::connect(port);
        let name = ServerName::try_from("localhost").expect("a valid server name");
        let conn = ClientConnection::new(config.clone(), name).expect("a client connection");
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .unwrap_or_else(|e| panic!("TLS handshake with 127.0.0.1:{port}: {e}"));
        }
        assert_eq!(
            tls.conn.alpn_protocol(),
            Some(&b"http/1.1"[..]),
            "ALPN with 127.0.0.1:{port}"
        );
        tls
    }

    /// A response: its head and body.
    struct Response {
        head: String,
        body: Vec<u8>,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            self.head.lines().find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.eq_ignore_ascii_case(name).then_some(v.trim())
            })
        }

        /// The header names, lowercased, in order.
        fn header_names(&self) -> Vec<String> {
            self.head
                .lines()
                .skip(1)
                .filter_map(|line| Some(line.split_once(':')?.0.to_ascii_lowercase()))
                .collect()
        }
    }

    /// Sends `GET /` (with `Connection: close` if `close`) and reads one whole response with a
    /// `Content-Length` body.
    fn get(conn: &mut dyn Conn, close: bool) -> Response {
        let request: &[u8] = if close {
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        } else {
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
        };
        conn.write_all(request).expect("send GET /");
        conn.flush().expect("send GET /");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = conn.read(&mut chunk).expect("read the response head");
            assert!(n > 0, "connection closed before the response head");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut response = Response {
            head,
            body: Vec::new(),
        };
        let length: usize = response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Content-Length in:\n{}", response.head));
        while buf.len() < head_end + length {
            let n = conn.read(&mut chunk).expect("read the response body");
            assert!(n > 0, "connection closed before the response body");
            buf.extend_from_slice(&chunk[..n]);
        }
        response.body = buf[head_end..].to_vec();
        response
    }

    /// Opens a connection, does one keep-alive GET, checks it, and returns the connection open.
    fn open_and_get(connect: &dyn Fn() -> Box<dyn Conn>) -> Box<dyn Conn> {
        let mut conn = connect();
        let response = get(conn.as_mut(), false);
        assert!(
            response.head.starts_with("HTTP/1.1 200") && response.body == BODY,
            "unexpected response:\n{}",
            response.head
        );
        conn
    }

    /// Checks a TLS server: two keep-alive GETs on one connection, then a `Connection: close` GET
    /// (whether the server then ends the connection is only reported, on stderr). Returns the first response's header names
    /// and the negotiated protocol version and cipher suite.
    fn check(label: &str, port: u16, config: &Arc<ClientConfig>) -> (Vec<String>, String) {
        let mut tls = tls_connect(port, config);
        let negotiated = format!(
            "{:?}, {:?}",
            tls.conn.protocol_version().expect("a protocol version"),
            tls.conn
                .negotiated_cipher_suite()
                .expect("a cipher suite")
                .suite()
        );
        let mut names = Vec::new();
        for i in 0..2 {
            let r = get(&mut tls, false);
            assert!(
                r.head.starts_with("HTTP/1.1 200")
                    && r.body == BODY
                    && r.header("connection")
                        .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
                "{label}: unexpected response to keep-alive GET / #{}:\n{}",
                i + 1,
                r.head
            );
            if i == 0 {
                eprintln!("{label}: response head:\n{}", r.head.trim_end());
                names = r.header_names();
            }
        }
        drop(tls);
        let mut tls = tls_connect(port, config);
        let r = get(&mut tls, true);
        assert!(
            r.head.starts_with("HTTP/1.1 200")
                && r.body == BODY
                && r.header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close")),
            "{label}: unexpected response to GET / with Connection: close:\n{}",
            r.head
        );
        // The server should end the connection now. Not waited for long, and not required:
        // wrk closes its side itself after a `Connection: close` response.
        tls.sock
            .set_read_timeout(Some(CLOSE_WAIT))
            .expect("set read timeout");
        let mut rest = Vec::new();
        let end = tls.read_to_end(&mut rest);
        assert!(
            rest.is_empty(),
            "{label}: bytes after the Connection: close response"
        );
        eprintln!(
            "{label}: negotiated {negotiated}; after the Connection: close response, {}",
            match end {
                Ok(_) => "the server closed with close_notify".to_string(),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    format!(
                        "WARNING: the server had not closed the connection {CLOSE_WAIT:?} later"
                    )
                }
                Err(e) => format!("the server closed without close_notify ({e})"),
            }
        );
        (names, negotiated)
    }

    // ---------------------------------------------------------------- throughput

    fn sample(server: &mut dyn Server, w: &Workload, seconds: u64) -> WrkSample {
        let pid = server.pid();
        let headers: &[&str] = if w.close { &["Connection: close"] } else { &[] };
        let before = common::cpu_seconds(pid);
        let wrk = run_wrk_url(
            &format!("https://127.0.0.1:{}/", server.port()),
            w.threads,
            w.connections,
            seconds,
            headers,
            &format!("/proc/{pid}/status"),
        );
        let cpu = common::cpu_seconds(pid) - before;
        if let Some(why) = server.exited() {
            panic!("{why} during the {} run", w.label);
        }
        WrkSample::new(wrk, cpu)
    }

    // ---------------------------------------------------------------- memory

    /// RSS with and without [`HELD`] idle connections, in one server process.
    struct Rss {
        label: String,
        idle: ProcStatus,
        loaded: ProcStatus,
        threads_per_connection: u64,
    }

    /// The maximum RSS over five samples 100 ms apart, with the thread count of the last.
    fn status_max(path: &str) -> ProcStatus {
        let mut max = ProcStatus::read(path);
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(100));
            let s = ProcStatus::read(path);
            max = ProcStatus {
                rss_kib: max.rss_kib.max(s.rss_kib),
                rss_anon_kib: max.rss_anon_kib.max(s.rss_anon_kib),
                threads: s.threads,
            };
        }
        max
    }

    fn measure_rss(
        label: &str,
        server: &mut dyn Server,
        connect: &(dyn Fn() -> Box<dyn Conn> + Sync),
    ) -> Rss {
        let path = format!("/proc/{}/status", server.pid());
        drop(open_and_get(connect));
        let idle_threads = common::settled_threads(&path);
        let idle = status_max(&path);
        let mut held = vec![open_and_get(connect)];
        let threads_per_connection = common::settled_threads(&path).saturating_sub(idle_threads);
        let started = Instant::now();
        let rest = HELD - 1;
        std::thread::scope(|s| {
            let openers: Vec<_> = (0..OPENERS)
                .map(|i| {
                    let n = rest / OPENERS + u64::from(i < rest % OPENERS);
                    s.spawn(move || (0..n).map(|_| open_and_get(connect)).collect::<Vec<_>>())
                })
                .collect();
            for opener in openers {
                held.extend(opener.join().expect("a client thread panicked"));
            }
        });
        let expected = idle_threads + HELD * threads_per_connection;
        if let Err(t) = common::wait_threads(&path, WAIT, |t| t == expected) {
            panic!("{label}: expected {expected} threads with {HELD} open connections, have {t}");
        }
        let loaded = status_max(&path);
        let still = ProcStatus::read(&path).threads;
        assert_eq!(
            still, expected,
            "{label}: connections closed during the reading ({still} threads, expected {expected})"
        );
        if let Some(why) = server.exited() {
            panic!("{why} while holding {HELD} connections");
        }
        eprintln!(
            "{label}: {HELD} connections opened and served in {:.1} s, {threads_per_connection} thread(s) each",
            started.elapsed().as_secs_f64()
        );
        drop(held);
        Rss {
            label: label.to_string(),
            idle,
            loaded,
            threads_per_connection,
        }
    }

    // ---------------------------------------------------------------- report

    fn mib(kib: u64) -> String {
        format!("{:.1}", kib as f64 / 1024.0)
    }

    pub fn main() {
        if let Some(dir) = std::env::var_os(BASELINE_ENV) {
            run_baseline(Path::new(&dir));
        }
        common::wrk::require();
        let seconds = common::env_knob("CCSERVE_BENCH_SECONDS", 5);
        let rounds = common::rounds();
        let machine = common::machine();
        let keys = Keys::generate();
        let client = client_config(&keys.ca);

        // ---- checks ----
        let mut servers: (Ccserve, Baseline) = (start_ccserve_tls(&keys), Baseline::start(&keys));
        let (ccserve_names, negotiated) = check(SERVERS[0], servers.0.port, &client);
        let (baseline_names, _) = check(SERVERS[1], servers.1.port, &client);
        assert_eq!(
            ccserve_names, baseline_names,
            "the baseline must send the headers ccserve sends"
        );

        // ---- memory: fresh processes ----
        let tls_connect_to = |port: u16| {
            let client = client.clone();
            move || -> Box<dyn Conn> { Box::new(tls_connect(port, &client)) }
        };
        let mut rss = Vec::new();
        {
            let mut server = Ccserve::start(PLAIN_SCRIPT);
            let port = server.port;
            let connect = move || -> Box<dyn Conn> { Box::new(common::connect(port)) };
            rss.push(measure_rss(
                &format!("ccserve, plain HTTP (`{PLAIN_SCRIPT}`)"),
                &mut server,
                &connect,
            ));
        }
        {
            let mut server = start_ccserve_tls(&keys);
            let connect = tls_connect_to(server.port);
            rss.push(measure_rss(
                &format!("ccserve, TLS (`{SCRIPT}`)"),
                &mut server,
                &connect,
            ));
        }
        {
            let mut server = Baseline::start(&keys);
            let connect = tls_connect_to(server.port);
            rss.push(measure_rss(
                "raw rustls, TLS (thread per connection)",
                &mut server,
                &connect,
            ));
        }

        // ---- throughput ----
        // results[workload][server]: one sample per round.
        let mut results: Vec<[Vec<WrkSample>; 2]> =
            WORKLOADS.iter().map(|_| [Vec::new(), Vec::new()]).collect();
        for (w, workload) in WORKLOADS.iter().enumerate() {
            for round in 0..rounds {
                for i in 0..2 {
                    let k = (round + i) % 2;
                    let server: &mut dyn Server = if k == 0 {
                        &mut servers.0
                    } else {
                        &mut servers.1
                    };
                    let s = sample(server, workload, seconds);
                    eprintln!(
                        "{}",
                        s.progress(&format!(
                            "{} round {}/{rounds} {}",
                            workload.label,
                            round + 1,
                            SERVERS[k]
                        ))
                    );
                    results[w][k].push(s);
                }
            }
        }
        drop(servers);
        let load_end = common::load_average();

        // ---- report ----
        let mut md = String::new();
        let _ = writeln!(md, "### HTTPS: ccserve vs a raw rustls server\n");
        let _ = writeln!(
            md,
            "Machine: {machine}; load average at end {load_end}. {}. The servers and wrk share \
             the machine's cores. Certificate: ECDSA P-256 for `localhost` and `127.0.0.1`, \
             signed by a bench CA (rcgen, generated per run); both servers use the ring provider \
             and rustls's default versions (a rustls client negotiated {negotiated}; wrk's \
             OpenSSL client does not resume sessions, so each connection is a full handshake).\n",
            common::binary()
        );
        let _ = writeln!(
            md,
            "#### HTTPS hello world\n\n`wrk --latency` over `https://`, {seconds} s per run, \
             {rounds} rounds (each round runs the two servers one after the other, alternating \
             which goes first); medians over rounds. The handshake workload opens a new TCP \
             connection and TLS session per request: its req/s are new connections per second. \
             CPU = the server process's user + system time over the run (`/proc/PID/stat`, all \
             threads; the baseline is a child process of the bench) / requests completed.\n"
        );
        let _ = writeln!(
            md,
            "| workload | server | req/s | req/s per round | p50 / p99 ms | server CPU µs / request | peak threads (per round) | socket errors | non-2xx |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
        for (w, workload) in WORKLOADS.iter().enumerate() {
            for (k, label) in SERVERS.iter().enumerate() {
                let _ = writeln!(
                    md,
                    "| {} | {label} | {} |",
                    workload.label,
                    row_cells(&results[w][k])
                );
            }
        }
        let _ = writeln!(
            md,
            "\n| workload | req/s (handshakes: connections/s): ccserve / rustls | CPU per request: ccserve / rustls |"
        );
        let _ = writeln!(md, "|---|---|---|");
        for (w, workload) in WORKLOADS.iter().enumerate() {
            let rps = |k: usize| Some(median_of(&results[w][k], |s| s.wrk.requests_per_sec));
            let cpu = |k: usize| {
                Some(median_duration(&results[w][k], |s| s.cpu_per_request).as_secs_f64())
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                workload.label,
                ratio(rps(0), rps(1)),
                ratio(cpu(0), cpu(1)),
            );
        }
        let _ = writeln!(
            md,
            "\n#### RSS per idle connection\n\n`VmRSS` and `Threads` of `/proc/PID/status`, a \
             fresh server process per row, after one warm-up request on a closed connection; \
             then {HELD} connections each served one keep-alive `GET /` and held open (TLS: \
             verified handshakes with a rustls client).\n"
        );
        let _ = writeln!(
            md,
            "| server | idle RSS MiB (threads) | with {HELD} connections RSS MiB (threads) | Δ RSS MiB | KiB per connection | of which anonymous KiB | threads per connection |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        for r in &rss {
            let delta = r.loaded.rss_kib.saturating_sub(r.idle.rss_kib);
            let anon = r.loaded.rss_anon_kib.saturating_sub(r.idle.rss_anon_kib);
            let _ = writeln!(
                md,
                "| {} | {} ({}) | {} ({}) | {} | {:.1} | {:.1} | {} |",
                r.label,
                mib(r.idle.rss_kib),
                r.idle.threads,
                mib(r.loaded.rss_kib),
                r.loaded.threads,
                mib(delta),
                delta as f64 / HELD as f64,
                anon as f64 / HELD as f64,
                r.threads_per_connection,
            );
        }
        drop(keys);
        common::publish("tls", &md);
    }
}
