//! A mutation fuzzer for the network input: raw request bytes into a running HTTP listener, raw
//! frames into a WebSocket connection, and raw bytes (mutated ClientHellos, plain requests) into
//! a TLS port. Every case must end with an answer or a close, the
//! process must stay alive, never log a panic, and keep serving valid requests.
//!
//! `cargo test --test fuzz` runs a short smoke (a few thousand cases, fixed seed). For a long run:
//! `CCSERVE_FUZZ_SECONDS=600 cargo test --release --test fuzz -- --nocapture` (the seed is
//! printed; `CCSERVE_FUZZ_SEED=N` replays one). cargo-fuzz needs a nightly toolchain, which this
//! project's machines cannot install, hence a self-contained fuzzer.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{connect, Server, WAIT};

/// xorshift64*: small, deterministic, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &'a [&'a [u8]]) -> &'a [u8] {
        items[self.below(items.len())]
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /p?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"PUT /x HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b" ",
    b"\0",
    b"\xff",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked",
    b"18446744073709551616",
    b"-1",
    b"0x10",
    b"ffffffffffffffff",
    b"HTTP/1.1",
    b"HTTP/9.9",
    b";ext=1",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"%00",
    b"\t",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(6) {
        let pos = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = rng.pick(TOKENS);
                out.splice(pos..pos, token.iter().copied());
            }
            2 if pos < out.len() => {
                let end = (pos + rng.below(16)).min(out.len());
                out.drain(pos..end);
            }
            3 => out.truncate(pos),
            4 => {
                let len = rng.below(64);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                out.splice(pos..pos, bytes);
            }
            5 if pos < out.len() => {
                let end = (pos + rng.below(32)).min(out.len());
                let copy = out[pos..end].to_vec();
                out.splice(pos..pos, copy);
            }
            _ => {
                let n = rng.below(3000);
                out.splice(pos..pos, std::iter::repeat_n(b'a', n));
            }
        }
    }
    out
}

/// Sends `bytes`, half-closes, and drains until the server closes (bounded). `parked`: first one
/// valid request is answered on the connection, so that it is parked with the Lua thread and the
/// case's bytes are read by the Lua thread (`src/lane.rs`) before anything else sees them.
fn send_case(port: u16, bytes: &[u8], parked: bool) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        panic!("listener gone");
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    if parked {
        s.write_all(b"GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let warm = common::read_response(&mut s, false).expect("the warm-up response");
        assert_eq!(warm.status, 200, "{}", warm.status_line);
    }
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

fn still_serves(port: u16) {
    let resp = common::get(port, "/check");
    assert_eq!(resp.status, 200, "after fuzz cases: {}", resp.status_line);
}

fn budget() -> (u64, Duration, usize) {
    let seed = std::env::var("CCSERVE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_f00d_u64);
    let seconds: u64 = std::env::var("CCSERVE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // Smoke: a fixed number of cases; long run: as many as fit in the time.
    let cases = if seconds == 0 { 2_000 } else { usize::MAX };
    (
        seed,
        Duration::from_secs(seconds.max(1) * if seconds == 0 { 120 } else { 1 }),
        cases,
    )
}

#[test]
fn fuzzed_http_requests_never_crash_or_hang_the_listener() {
    let mut server = Server::start(
        &common::listen_script("res.write(req.getMethod() .. ' ' .. #req.readAll())\nres.close()"),
        &[
            "--header-timeout",
            "2",
            "--body-timeout",
            "2",
            "--keep-alive-timeout",
            "2",
        ],
    );
    let (seed, duration, cases) = budget();
    println!("http fuzz: seed {seed}");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut done = 0usize;
    while done < cases && started.elapsed() < duration {
        let base = rng.pick(SEEDS);
        let case = mutate(&mut rng, base);
        send_case(server.port, &case, rng.below(2) == 0);
        done += 1;
        if done.is_multiple_of(500) {
            still_serves(server.port);
        }
    }
    still_serves(server.port);
    println!("http fuzz: {done} cases in {:?}", started.elapsed());
    assert!(
        server.wait_exit(Duration::from_millis(1)).is_none(),
        "ccserve died"
    );
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

#[test]
fn fuzzed_websocket_frames_never_crash_the_server() {
    let mut server = Server::start(
        "local server = assert(http.websocketServer(0))\n\
         print('LISTENING ' .. server.port)\n\
         local clients = {}\n\
         while true do\n\
           local e, a, b, c = os.pullEvent()\n\
           if e == 'websocket_server_connect' then clients[b.clientID] = b\n\
           elseif e == 'websocket_server_message' and clients[a] then pcall(clients[a].send, b, c)\n\
           elseif e == 'websocket_server_closed' then clients[a] = nil end\n\
         end\n",
        &[],
    );
    let (seed, duration, cases) = budget();
    println!("ws fuzz: seed {seed}");
    let mut rng = Rng(seed ^ 0x9e37_79b9);
    let frame_seeds: &[&[u8]] = &[
        b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", // masked "Hello"
        b"\x82\x83\x00\x00\x00\x00\x01\x02\x03",         // masked binary
        b"\x89\x80\x00\x00\x00\x00",                     // ping
        b"\x01\x81\x00\x00\x00\x00a\x80\x81\x00\x00\x00\x00b", // fragmented
        b"\x88\x82\x00\x00\x00\x00\x03\xe8",             // close 1000
    ];
    let started = Instant::now();
    let mut done = 0usize;
    let ws_cases = cases / 2;
    while done < ws_cases && started.elapsed() < duration {
        let mut s = connect(server.port);
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        if rng.below(2) == 0 {
            // One message echoed first: the reader is then parked, and the fuzzed frames are
            // read by the Lua thread (`src/ws/frame.rs`) before tungstenite sees any of them.
            common::read_until(&mut s, b"\r\n\r\n");
            s.write_all(frame_seeds[0]).unwrap();
            let mut echo = [0u8; 7];
            s.read_exact(&mut echo).expect("the warm-up echo");
            assert_eq!(&echo, b"\x81\x05Hello");
        }
        let mut frames = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let base = frame_seeds[rng.below(frame_seeds.len())];
            frames.extend(mutate(&mut rng, base));
        }
        let _ = s.write_all(&frames);
        let _ = s.shutdown(Shutdown::Write);
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        done += 1;
    }
    println!("ws fuzz: {done} cases in {:?}", started.elapsed());
    // Still accepting and echoing.
    let (mut ws, _) = tungstenite::client::client(
        format!("ws://127.0.0.1:{}/", server.port),
        connect(server.port),
    )
    .expect("handshake after fuzzing");
    ws.send(tungstenite::Message::text("alive")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("alive"));
    assert!(
        server.wait_exit(Duration::from_millis(1)).is_none(),
        "ccserve died"
    );
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

/// A self-signed certificate for `localhost` (generated here, never committed): its PEM files'
/// paths.
#[cfg(feature = "tls")]
fn tls_files() -> (std::path::PathBuf, std::path::PathBuf, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fuzz-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    (cert_path, key_path, cert.cert.pem())
}

/// A rustls client trusting `ca_pem`, for a real handshake.
#[cfg(feature = "tls")]
fn tls_client(ca_pem: &str) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The first flight of a real client (its ClientHello record), as bytes to mutate.
#[cfg(feature = "tls")]
fn client_hello(config: &std::sync::Arc<rustls::ClientConfig>) -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// A whole HTTPS request with a verifying client: the server still serves.
#[cfg(feature = "tls")]
fn still_serves_tls(port: u16, config: &std::sync::Arc<rustls::ClientConfig>) {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let tcp = connect(port);
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /check HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("an HTTPS request after fuzz cases");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "after fuzz cases: {text:?}"
    );
}

#[cfg(feature = "tls")]
#[test]
fn fuzzed_bytes_on_a_tls_port_never_crash_or_hang_it() {
    let (cert, key, ca) = tls_files();
    let script =
        common::listen_script_with("res.write(req.getMethod()) res.close()", "{tls = true}");
    let mut server = Server::start(
        &script,
        &[
            "--header-timeout",
            "2",
            "--tls-cert",
            &cert.to_string_lossy(),
            "--tls-key",
            &key.to_string_lossy(),
        ],
    );
    let config = tls_client(&ca);
    let hello = client_hello(&config);
    let seeds: [&[u8]; 4] = [
        &hello,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
        b"\x16\x03\x03\xff\xff",
    ];
    still_serves_tls(server.port, &config);
    let (seed, duration, cases) = budget();
    println!("tls fuzz: seed {seed}");
    let mut rng = Rng(seed ^ 0x7153_7153);
    let started = Instant::now();
    let mut done = 0usize;
    // A handshake costs more than a request: a quarter of the HTTP smoke's cases.
    while done < cases / 4 && started.elapsed() < duration {
        let base = seeds[rng.below(seeds.len())];
        let case = mutate(&mut rng, base);
        send_case(server.port, &case, false);
        done += 1;
        if done.is_multiple_of(100) {
            still_serves_tls(server.port, &config);
        }
    }
    still_serves_tls(server.port, &config);
    println!("tls fuzz: {done} cases in {:?}", started.elapsed());
    assert!(
        server.wait_exit(Duration::from_millis(1)).is_none(),
        "ccserve died"
    );
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}
