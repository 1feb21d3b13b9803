//! TLS (`--tls-cert`/`--tls-key`, `{tls = true}`, `https://` and `wss://` clients, `--ca-file`)
//! against the real `ccserve` binary over real TCP on 127.0.0.1, with independent clients (curl,
//! Python's `ssl` module) and with ccserve's own client.
//!
//! Certificates are made at test time with rcgen: a CA, a server certificate for `localhost` and
//! `127.0.0.1` signed by it, a second CA nothing trusts with a certificate of its own, and a
//! certificate for another host name. Scripts print `LISTENING <port>` once bound; tests wait on
//! lines, responses or closed sockets, always with a bound. Nothing sleeps to synchronise (the
//! certificate-reload test retries a new connection, a bounded poll of a once-a-second check).

#![cfg(feature = "tls")]

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{closed_within, read_response, Server, WAIT};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Upper bound for "answered while something else is stuck": the point is "not blocked", not
/// speed.
const QUICK: Duration = Duration::from_secs(5);

/// What a plain HTTP request to a TLS-only port is told.
const USE_HTTPS: &str = "This port serves HTTPS: use https:// to reach it.";

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// A CA: its certificate (to sign with and to write out) and key.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A server certificate for `names` (DNS names) and `ips`, signed by this CA; returns the
    /// certificate and key as PEM.
    fn issue(&self, names: &[&str], ips: &[IpAddr]) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("server"),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        // OpenSSL's strict checks (Python 3.13's default context) want the issuer's key id.
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// The PEM files of one test, in a directory of their own (removed when dropped: declare it
/// before the servers using it).
struct Pki {
    dir: PathBuf,
    /// The CA that signed `cert` and `other_cert` (`ca1`).
    ca: PathBuf,
    /// Certificate for `localhost` and 127.0.0.1, signed by `ca`, and its key.
    cert: PathBuf,
    key: PathBuf,
    /// A second CA, trusted by nobody unless named.
    ca2: PathBuf,
    /// Certificate for `localhost` and 127.0.0.1 signed by `ca2`, and its key (PEM text; the key
    /// also written to `key2`).
    key2: PathBuf,
    cert2_pem: String,
    key2_pem: String,
    /// Certificate for `example.org` only, signed by `ca`, and its key.
    other_cert: PathBuf,
    other_key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let localhost = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
        let ca1 = Ca::new("ccserve test CA 1");
        let ca2 = Ca::new("ccserve test CA 2");
        let (cert, key) = ca1.issue(&["localhost"], &localhost);
        let (cert2_pem, key2_pem) = ca2.issue(&["localhost"], &localhost);
        let (other_cert, other_key) = ca1.issue(&["example.org"], &[]);
        Pki {
            dir: dir.clone(),
            ca: write("ca1.pem", &ca1.cert.pem()),
            cert: write("cert.pem", &cert),
            key: write("key.pem", &key),
            ca2: write("ca2.pem", &ca2.cert.pem()),
            key2: write("key2.pem", &key2_pem),
            cert2_pem,
            key2_pem,
            other_cert: write("other.pem", &other_cert),
            other_key: write("other-key.pem", &other_key),
        }
    }

    /// `--tls-cert CERT --tls-key KEY` for the `localhost` certificate.
    fn server_args(&self) -> [&str; 4] {
        ["--tls-cert", s(&self.cert), "--tls-key", s(&self.key)]
    }

    /// A file next to the others with `text` in it.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

// ---------------------------------------------------------------------------------------------
// Scripts and clients
// ---------------------------------------------------------------------------------------------

/// [`common::listen_script`] over TLS: `http.listen(0, handler, {tls = true})`, printing
/// `LISTENING <port>` once bound.
fn tls_listen_script(handler: &str) -> String {
    common::listen_script_with(handler, "{tls = true}")
}

/// Echoes method, target and body: `GET /x|` or `POST /x|body`.
const ECHO: &str =
    "res.write(req.getMethod() .. ' ' .. req.getURL() .. '|' .. req.readAll())\nres.close()";

/// A CraftOS echo server over TLS with the `localhost` certificate.
fn https_echo(pki: &Pki, extra: &[&str]) -> Server {
    let mut args = pki.server_args().to_vec();
    args.extend_from_slice(extra);
    Server::start(&tls_listen_script(ECHO), &args)
}

/// Runs curl with `args` (bounded by `--max-time`, never through a proxy).
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl")
}

/// curl's stdout, failing the test if curl failed.
fn curl_ok(args: &[&str]) -> String {
    let out = curl(args);
    assert!(
        out.status.success(),
        "curl {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 from curl")
}

/// Runs a Python program (`python3 -c`) with `args`; its stdout, failing the test if it failed.
fn python(program: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed ({}): {}\nstdout: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("UTF-8 from python3")
}

/// Python client: two pipelined requests on one TLS connection (verified with the CA file
/// `argv[2]`, as `localhost`; the second asks to close), then prints the selected ALPN protocol,
/// the TLS version and the two responses as received (read by their `Content-Length`). With
/// `argv[3]` = `eof`, then waits for the server to close and prints `EOF <clean|ragged>
/// <seconds after the second response>` (clean: a TLS close_notify came first).
const PY_PIPELINED: &str = r#"
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["http/1.1"])
raw = socket.create_connection(("127.0.0.1", port), timeout=30)
s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
print("ALPN", s.selected_alpn_protocol())
print("VERSION", s.version())
s.sendall(b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n"
          b"POST /two HTTP/1.1\r\nHost: localhost\r\nContent-Length: 7\r\n"
          b"Connection: close\r\n\r\npayload")
buf = b""
def more():
    global buf
    chunk = s.recv(65536)
    if not chunk:
        raise SystemExit("closed early: %r" % buf)
    buf += chunk
out = b""
for _ in range(2):
    while b"\r\n\r\n" not in buf:
        more()
    head, _, buf = buf.partition(b"\r\n\r\n")
    length = 0
    for l in head.split(b"\r\n")[1:]:
        name, _, value = l.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buf) < length:
        more()
    out += head + b"\r\n\r\n" + buf[:length]
    buf = buf[length:]
sys.stdout.write(out.decode())
if len(sys.argv) > 3 and sys.argv[3] == "eof":
    answered = time.monotonic()
    try:
        how = "clean" if s.recv(65536) == b"" else "data"
    except ssl.SSLEOFError:
        how = "ragged"
    print("\nEOF %s %.3f" % (how, time.monotonic() - answered))
"#;

/// Python client held open by the test: connects (verified with the CA file `argv[2]`, as
/// `localhost`), prints `CONNECTED <alpn> <issuer CN>`, then for each line on stdin sends a
/// keep-alive `GET <line>` on the same connection and prints `RESPONSE <status line>|<body>`
/// (`CLOSED` if the server closed instead).
const PY_HELD: &str = r#"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["http/1.1"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20),
                    server_hostname="localhost")
issuer = dict(x[0] for x in s.getpeercert()["issuer"])["commonName"]
print("CONNECTED", s.selected_alpn_protocol(), issuer, flush=True)
buf = b""
def more():
    global buf
    chunk = s.recv(65536)
    if not chunk:
        print("CLOSED", flush=True)
        sys.exit(1)
    buf += chunk
for line in sys.stdin:
    path = line.strip()
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
    while b"\r\n\r\n" not in buf:
        more()
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = 0
    for l in lines[1:]:
        name, _, value = l.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(buf) < length:
        more()
    body, buf = buf[:length], buf[length:]
    print("RESPONSE %s|%s" % (lines[0], body.decode()), flush=True)
"#;

/// A running [`PY_HELD`] client. Killed when dropped.
struct HeldClient {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl HeldClient {
    fn start(port: u16, ca: &Path) -> HeldClient {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(PY_HELD)
            .arg(port.to_string())
            .arg(ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = common::line_channel(stdout);
        HeldClient {
            child,
            stdin,
            lines,
        }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .expect("a line from the Python client")
    }

    /// `GET path` on the held connection; the `RESPONSE ...` line.
    fn get(&mut self, path: &str) -> String {
        writeln!(self.stdin, "{path}").unwrap();
        self.stdin.flush().unwrap();
        self.line()
    }
}

impl Drop for HeldClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a ccserve script that serves nothing (a client) to its end with `extra` flags and
/// `env`; returns its stdout lines, its exit code and its stderr.
fn run_client(
    source: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Vec<String>, Option<i32>, String) {
    let mut client = Server::spawn_env(source, extra, &[], env);
    let code = client.exit_code();
    (client.rest_of_stdout(), code, client.stderr_when_closed())
}

/// A lua-http server on 127.0.0.1, OS-chosen port, answering `luahttp <path>`, with `options`
/// as extra fields of `listen{}` (`tls = ...`). Over TLS the answer ends in ` https`: the
/// request's `:scheme` said so, `stream:checktls()` and `connection:checktls()` returned the
/// stand-in for luaossl's SSL object, and its methods raised the error that explains it; over
/// plain HTTP it ends in ` http` when `:scheme` was `http` and `checktls()` nil.
fn luahttp_script(options: &str) -> String {
    format!(
        r#"
local http_server = require "http.server"
local http_headers = require "http.headers"
local function scheme_seen(stream, headers)
    local scheme, ssl = headers:get(":scheme"), stream:checktls()
    if ssl ~= stream.connection:checktls() then return "connection disagrees" end
    if scheme == "http" and ssl == nil then return "http" end
    if scheme ~= "https" or not ssl then return "scheme " .. scheme .. ", " .. tostring(ssl) end
    local ok, err = pcall(function() return ssl:getPeerCertificate() end)
    if ok or not err:find("luaossl's SSL object and its methods ('getPeerCertificate')", 1, true) then
        return "method: " .. tostring(err)
    end
    return "https"
end
local server = assert(http_server.listen {{
    host = "127.0.0.1",
    port = 0,
    {options}
    onstream = function(server, stream)
        local headers = assert(stream:get_headers())
        local path = headers:get(":path")
        local body = "luahttp " .. path .. " " .. scheme_seen(stream, headers)
        local h = http_headers.new()
        h:append(":status", "200")
        h:append("content-length", tostring(#body))
        assert(stream:write_headers(h, false))
        assert(stream:write_chunk(body, true))
    end,
}})
assert(server:listen())
print("LISTENING " .. select(3, server:localname()))
assert(server:loop())
"#
    )
}

/// Asserts a plain `GET` to `port` (a TLS-only port) is answered `400` telling to use
/// `https://`, and the connection closed.
fn assert_plain_refused(port: u16) {
    let mut s = common::connect(port);
    s.write_all(b"GET /plain HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let raw = common::read_to_close(&mut s);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "answer to plain HTTP: {text:?}"
    );
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    assert_eq!(body, USE_HTTPS, "answer to plain HTTP: {text:?}");
}

// ---------------------------------------------------------------------------------------------
// 1. HTTPS with curl
// ---------------------------------------------------------------------------------------------

#[test]
fn https_round_trips_with_curl_by_name_and_by_ip() {
    let pki = Pki::new();
    let server = https_echo(&pki, &[]);
    let port = server.port;
    let by_name = curl_ok(&[
        "-4",
        "--cacert",
        s(&pki.ca),
        &format!("https://localhost:{port}/path?q=1"),
    ]);
    assert_eq!(by_name, "GET /path?q=1|");
    let by_ip = curl_ok(&[
        "--cacert",
        s(&pki.ca),
        &format!("https://127.0.0.1:{port}/"),
    ]);
    assert_eq!(by_ip, "GET /|");
    let posted = curl_ok(&[
        "-4",
        "--cacert",
        s(&pki.ca),
        "--data-binary",
        "hello over TLS",
        &format!("https://localhost:{port}/post"),
    ]);
    assert_eq!(posted, "POST /post|hello over TLS");
    // A body larger than one TLS record (16 KiB) both ways.
    let big: String = (0..100_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let big_file = pki.file("big.txt", &big);
    let echoed = curl_ok(&[
        "-4",
        "--cacert",
        s(&pki.ca),
        "--data-binary",
        &format!("@{}", s(&big_file)),
        &format!("https://localhost:{port}/big"),
    ]);
    assert_eq!(echoed, format!("POST /big|{big}"));
}

#[test]
fn https_keep_alive_reuses_one_connection_for_several_requests() {
    let pki = Pki::new();
    let server = https_echo(&pki, &[]);
    let port = server.port;
    let out = curl_ok(&[
        "-4",
        "--cacert",
        s(&pki.ca),
        "-w",
        " connects=%{num_connects} code=%{http_code}\n",
        &format!("https://localhost:{port}/a"),
        &format!("https://localhost:{port}/b"),
        &format!("https://localhost:{port}/c"),
    ]);
    assert_eq!(
        out,
        "GET /a| connects=1 code=200\n\
         GET /b| connects=0 code=200\n\
         GET /c| connects=0 code=200\n",
        "one TLS connection for the three requests"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Python's ssl module
// ---------------------------------------------------------------------------------------------

#[test]
fn python_ssl_client_gets_pipelined_answers_and_alpn_http_1_1() {
    let pki = Pki::new();
    let server = https_echo(&pki, &[]);
    let out = python(PY_PIPELINED, &[&server.port.to_string(), s(&pki.ca)]);
    let mut lines = out.splitn(3, '\n');
    assert_eq!(lines.next(), Some("ALPN http/1.1"), "output: {out}");
    let version = lines.next().unwrap_or_default();
    assert!(
        version == "VERSION TLSv1.3" || version == "VERSION TLSv1.2",
        "output: {out}"
    );
    let rest = lines.next().unwrap_or_default();
    let first = rest.find("GET /one|").expect("first response body");
    let second = rest
        .find("POST /two|payload")
        .expect("second response body");
    assert!(first < second, "responses out of order: {rest:?}");
    assert_eq!(
        rest.matches("HTTP/1.1 200 OK\r\n").count(),
        2,
        "two responses: {rest:?}"
    );
    assert!(rest.contains("Connection: keep-alive\r\n"), "{rest:?}");
    assert!(rest.contains("Connection: close\r\n"), "{rest:?}");
    assert!(rest.ends_with("POST /two|payload"), "{rest:?}");
}

#[test]
fn connection_close_over_tls_ends_with_close_notify_promptly() {
    let pki = Pki::new();
    // Timeouts far above the bound below, so that none of them can be what closes.
    let server = https_echo(
        &pki,
        &["--keep-alive-timeout", "30", "--response-timeout", "30"],
    );
    for round in 0..5 {
        let out = python(PY_PIPELINED, &[&server.port.to_string(), s(&pki.ca), "eof"]);
        let eof = out.lines().last().unwrap_or_default();
        let mut words = eof.split(' ');
        assert_eq!(words.next(), Some("EOF"), "output: {out}");
        assert_eq!(words.next(), Some("clean"), "round {round}: {out}");
        let after: f64 = words.next().and_then(|w| w.parse().ok()).expect("seconds");
        assert!(
            after < 5.0,
            "round {round}: closed {after} s after the Connection: close response"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. ccserve's client against ccserve's server
// ---------------------------------------------------------------------------------------------

#[test]
fn our_https_client_gets_and_posts_to_our_https_server() {
    let pki = Pki::new();
    let server = https_echo(&pki, &[]);
    let port = server.port;
    let client = format!(
        r#"
local function show(h, err)
    if not h then return "ERR " .. tostring(err) end
    local text = h.getResponseCode() .. " " .. h.readAll()
    h.close()
    return text
end
print("GET " .. show(http.get("https://localhost:{port}/x")))
print("IP " .. show(http.get("https://127.0.0.1:{port}/by-ip")))
print("POST " .. show(http.post("https://localhost:{port}/p", "posted body")))
local big = string.rep("0123456789", 5000)
local h, err = http.post("https://localhost:{port}/big", big)
print("BIG " .. (h and tostring(h.readAll() == "POST /big|" .. big) or tostring(err)))
"#
    );
    let (lines, code, stderr) = run_client(&client, &["--ca-file", s(&pki.ca)], &[]);
    assert_eq!(
        lines,
        [
            "GET 200 GET /x|",
            "IP 200 GET /by-ip|",
            "POST 200 POST /p|posted body",
            "BIG true"
        ],
        "stderr:\n{stderr}"
    );
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
}

/// A WSS echo server: every message goes back to its sender.
const WSS_ECHO: &str = r#"
local server = assert(http.websocketServer(0, nil, {tls = true}))
print("LISTENING " .. server.port)
local clients = {}
while true do
    local event, a, b, c = os.pullEvent()
    if event == "websocket_server_connect" then
        clients[b.clientID] = b
    elseif event == "websocket_server_message" and clients[a] then
        clients[a].send(b, c)
    elseif event == "websocket_server_closed" then
        clients[a] = nil
    end
end
"#;

#[test]
fn our_wss_client_round_trips_with_our_wss_server() {
    let pki = Pki::new();
    let server = Server::start(WSS_ECHO, &pki.server_args());
    let port = server.port;
    let client = format!(
        r#"
local ws, err = http.websocket("wss://localhost:{port}/")
if not ws then print("ERR " .. tostring(err)) return end
ws.send("hello over wss")
print("GOT " .. tostring(ws.receive(15)))
local big = string.rep("abcdefghij", 10000)
ws.send(big)
local back = ws.receive(15)
print("BIG " .. tostring(back == big) .. " " .. tostring(back and #back))
ws.close()
"#
    );
    let (lines, code, stderr) = run_client(&client, &["--ca-file", s(&pki.ca)], &[]);
    assert_eq!(
        lines,
        ["GOT hello over wss", "BIG true 100000"],
        "stderr:\n{stderr}"
    );
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
}

// ---------------------------------------------------------------------------------------------
// 4. Refusals by our client
// ---------------------------------------------------------------------------------------------

/// A client script trying `https://` and `wss://` on `port`: prints `GET <body or error>` and
/// `WS <OK or error>`.
fn refusal_client(port: u16) -> String {
    format!(
        r#"
local h, err = http.get("https://localhost:{port}/")
print("GET " .. (h and h.readAll() or tostring(err)))
local ws, werr = http.websocket("wss://localhost:{port}/")
print("WS " .. (ws and "OK" or tostring(werr)))
"#
    )
}

const UNTRUSTED: &str = "Certificate verify failed: it is not signed by a trusted authority \
                         (add its CA with --ca-file)";
const WRONG_NAME: &str = "Certificate verify failed: it is not valid for this host name";

#[test]
fn our_client_refuses_a_server_signed_by_an_untrusted_ca() {
    let pki = Pki::new();
    let server = https_echo(&pki, &[]);
    let client = refusal_client(server.port);
    // No --ca-file: the system's store only (made deterministic: a "system" file without our CA,
    // and no directory).
    let (lines, code, stderr) = run_client(
        &client,
        &[],
        &[("SSL_CERT_FILE", s(&pki.ca2)), ("SSL_CERT_DIR", "")],
    );
    assert_eq!(
        lines,
        [format!("GET {UNTRUSTED}"), format!("WS {UNTRUSTED}")],
        "stderr:\n{stderr}"
    );
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
    // No --ca-file and the host's own store, whatever it holds (not our CA): refused too, or, on
    // a host without any, told so.
    let (lines, _, stderr) = run_client(&client, &[], &[]);
    assert_eq!(lines.len(), 2, "stderr:\n{stderr}");
    for line in &lines {
        assert!(
            line.ends_with(UNTRUSTED) || line.contains("no trusted certificates"),
            "{lines:?}; stderr:\n{stderr}"
        );
    }
    // --ca-file naming another CA: still refused.
    let (lines, _, stderr) = run_client(
        &client,
        &["--ca-file", s(&pki.ca2)],
        &[("SSL_CERT_FILE", s(&pki.ca2)), ("SSL_CERT_DIR", "")],
    );
    assert_eq!(
        lines,
        [format!("GET {UNTRUSTED}"), format!("WS {UNTRUSTED}")],
        "stderr:\n{stderr}"
    );
    // The control: the same client trusting the CA through the system's store is served, so the
    // refusals above are about trust, not something else.
    let (lines, _, stderr) = run_client(
        &client,
        &[],
        &[("SSL_CERT_FILE", s(&pki.ca)), ("SSL_CERT_DIR", "")],
    );
    assert_eq!(lines[0], "GET GET /|", "stderr:\n{stderr}");
}

#[test]
fn our_client_refuses_a_certificate_for_another_host_name() {
    let pki = Pki::new();
    let server = Server::start(
        &tls_listen_script(ECHO),
        &[
            "--tls-cert",
            s(&pki.other_cert),
            "--tls-key",
            s(&pki.other_key),
        ],
    );
    let (lines, code, stderr) = run_client(
        &refusal_client(server.port),
        &["--ca-file", s(&pki.ca)],
        &[],
    );
    assert_eq!(
        lines,
        [format!("GET {WRONG_NAME}"), format!("WS {WRONG_NAME}")],
        "stderr:\n{stderr}"
    );
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
}

// ---------------------------------------------------------------------------------------------
// 5. Stalled handshakes
// ---------------------------------------------------------------------------------------------

#[test]
fn stalled_handshakes_are_dropped_after_the_header_timeout_while_others_are_served() {
    let pki = Pki::new();
    let server = https_echo(&pki, &["--header-timeout", "1"]);
    let port = server.port;
    let started = Instant::now();
    // One sends nothing at all; one sends the start of a ClientHello and stops.
    let mut silent = common::connect(port);
    let mut half = common::connect(port);
    half.write_all(&[
        0x16, 0x03, 0x01, 0x00, 0xc8, // handshake record, 200 bytes announced
        0x01, 0x00, 0x00, 0xc4, // ClientHello, 196 bytes announced
        0x03, 0x03, 1, 2, 3, 4, 5, 6, 7, 8, // version, the start of the random
    ])
    .unwrap();
    // Meanwhile another HTTPS client is served at once.
    let t = Instant::now();
    let body = curl_ok(&[
        "-4",
        "--cacert",
        s(&pki.ca),
        &format!("https://localhost:{port}/meanwhile"),
    ]);
    assert_eq!(body, "GET /meanwhile|");
    assert!(t.elapsed() < QUICK, "served after {:?}", t.elapsed());
    for (what, stream) in [("silent", &mut silent), ("half ClientHello", &mut half)] {
        assert!(
            closed_within(stream, Duration::from_secs(10)),
            "{what} client still connected after {:?}",
            started.elapsed()
        );
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(800),
            "{what} client dropped after {after:?}, before the 1 s header timeout"
        );
        assert!(after < Duration::from_secs(10), "{what}: {after:?}");
    }
    // And the port still serves.
    assert_eq!(
        curl_ok(&[
            "-4",
            "--cacert",
            s(&pki.ca),
            &format!("https://localhost:{port}/after")
        ]),
        "GET /after|"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Plain HTTP and TLS on the same port
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_http_to_a_tls_port_gets_400_saying_to_use_https() {
    let pki = Pki::new();
    let server = https_echo(&pki, &[]);
    assert_plain_refused(server.port);
    // The port still serves HTTPS afterwards.
    assert_eq!(
        curl_ok(&[
            "--cacert",
            s(&pki.ca),
            &format!("https://127.0.0.1:{}/x", server.port)
        ]),
        "GET /x|"
    );
}

#[test]
fn plain_http_to_a_tls_port_400_has_a_correct_content_length() {
    let pki = Pki::new();
    let server = https_echo(&pki, &[]);
    let mut s = common::connect(server.port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut s, false).expect("a response");
    assert_eq!(resp.status_line, "HTTP/1.1 400 Bad Request");
    assert_eq!(resp.header("content-length"), Some("49"));
    assert_eq!(resp.text(), USE_HTTPS);
    assert!(
        common::read_to_close(&mut s).is_empty(),
        "bytes after the body"
    );
}

#[test]
fn luahttp_tls_nil_serves_plain_and_https_on_one_port() {
    let pki = Pki::new();
    let server = Server::start(&luahttp_script(""), &pki.server_args());
    let port = server.port;
    for round in 0..2 {
        let plain = curl_ok(&[&format!("http://127.0.0.1:{port}/plain{round}")]);
        assert_eq!(plain, format!("luahttp /plain{round} http"));
        let tls = curl_ok(&[
            "-4",
            "--cacert",
            s(&pki.ca),
            &format!("https://localhost:{port}/tls{round}"),
        ]);
        assert_eq!(tls, format!("luahttp /tls{round} https"));
    }
    let r = common::get(port, "/raw");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "luahttp /raw http");
}

#[test]
fn luahttp_tls_true_serves_https_only() {
    let pki = Pki::new();
    let server = Server::start(&luahttp_script("tls = true,"), &pki.server_args());
    let port = server.port;
    let tls = curl_ok(&[
        "-4",
        "--cacert",
        s(&pki.ca),
        &format!("https://localhost:{port}/tls"),
    ]);
    assert_eq!(tls, "luahttp /tls https");
    assert_plain_refused(port);
}

#[test]
fn luahttp_tls_false_serves_plain_only() {
    let pki = Pki::new();
    let server = Server::start(&luahttp_script("tls = false,"), &pki.server_args());
    let port = server.port;
    let out = curl(&[
        "-4",
        "--cacert",
        s(&pki.ca),
        &format!("https://localhost:{port}/tls"),
    ]);
    assert!(
        !out.status.success(),
        "HTTPS to a tls = false port succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        curl_ok(&[&format!("http://127.0.0.1:{port}/plain")]),
        "luahttp /plain http"
    );
}

#[test]
fn luahttp_tls_nil_without_a_certificate_serves_plain_only() {
    let server = Server::start(&luahttp_script(""), &[]);
    let port = server.port;
    let out = curl(&["-k", &format!("https://127.0.0.1:{port}/tls")]);
    assert!(
        !out.status.success(),
        "HTTPS without a certificate succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        curl_ok(&[&format!("http://127.0.0.1:{port}/plain")]),
        "luahttp /plain http"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Certificate rotation
// ---------------------------------------------------------------------------------------------

/// Overwrites `path` with `text` in place (as `cp` would) and dates it `ahead` into the future,
/// so its modification time surely differs from the old file's.
fn overwrite_file(path: &Path, text: &str, ahead: Duration) {
    std::fs::write(path, text).unwrap();
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() + ahead)
        .unwrap();
}

#[test]
fn renewed_certificate_is_used_for_new_connections_and_open_ones_keep_going() {
    let pki = Pki::new();
    let server = https_echo(&pki, &[]);
    let port = server.port;
    let url = format!("https://localhost:{port}/new");
    let with_ca2 = ["-4", "--cacert", s(&pki.ca2), url.as_str()];

    let mut held = HeldClient::start(port, &pki.ca);
    assert_eq!(held.line(), "CONNECTED http/1.1 ccserve test CA 1");
    assert_eq!(held.get("/first"), "RESPONSE HTTP/1.1 200 OK|GET /first|");
    // Before the renewal, the second CA does not vouch for the server.
    assert!(!curl(&with_ca2).status.success(), "CA 2 trusted too early");

    // Renew: the certificate and key signed by CA 2 replace the files.
    overwrite_file(&pki.cert, &pki.cert2_pem, Duration::from_secs(5));
    overwrite_file(&pki.key, &pki.key2_pem, Duration::from_secs(5));

    // The files are looked at at most once a second, at a new handshake: retry a little.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let out = curl(&with_ca2);
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "renewed certificate not used within 10 s: {}\nserver stderr:\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(body, "GET /new|");
    // The old CA no longer vouches for new connections.
    assert!(
        !curl(&["-4", "--cacert", s(&pki.ca), url.as_str()])
            .status
            .success(),
        "old certificate still presented to new connections"
    );
    // The connection opened before the renewal still answers.
    assert_eq!(held.get("/second"), "RESPONSE HTTP/1.1 200 OK|GET /second|");
}

// ---------------------------------------------------------------------------------------------
// 8. Start-up errors
// ---------------------------------------------------------------------------------------------

/// Starts ccserve with `extra` flags on a trivial script; asserts it exits 1 and returns stderr.
fn failed_start(extra: &[&str]) -> String {
    let mut server = Server::spawn("print('STARTED')", extra, &[]);
    let code = server.exit_code();
    let stderr = server.stderr_when_closed();
    assert_eq!(code, Some(1), "flags {extra:?}; stderr:\n{stderr}");
    assert!(
        server.rest_of_stdout().is_empty(),
        "the script ran with flags {extra:?}"
    );
    stderr
}

#[test]
fn certificate_without_key_or_key_without_certificate_is_refused_at_start() {
    let pki = Pki::new();
    for extra in [["--tls-cert", s(&pki.cert)], ["--tls-key", s(&pki.key)]] {
        let stderr = failed_start(&extra);
        assert!(
            stderr.contains("--tls-cert") && stderr.contains("--tls-key"),
            "flags {extra:?}; stderr:\n{stderr}"
        );
    }
}

#[test]
fn unreadable_certificate_or_key_files_are_refused_at_start_naming_the_file() {
    let pki = Pki::new();
    let not_pem = pki.file("not-pem.txt", "this is not a PEM file\n");
    // A key that is not PEM.
    let stderr = failed_start(&["--tls-cert", s(&pki.cert), "--tls-key", s(&not_pem)]);
    assert!(stderr.contains(s(&not_pem)), "stderr:\n{stderr}");
    // A certificate that is not PEM.
    let stderr = failed_start(&["--tls-cert", s(&not_pem), "--tls-key", s(&pki.key)]);
    assert!(stderr.contains(s(&not_pem)), "stderr:\n{stderr}");
    // A key that does not belong to the certificate.
    let stderr = failed_start(&["--tls-cert", s(&pki.cert), "--tls-key", s(&pki.key2)]);
    assert!(stderr.contains(s(&pki.cert)), "stderr:\n{stderr}");
    // The certificate and key swapped.
    let stderr = failed_start(&["--tls-cert", s(&pki.key), "--tls-key", s(&pki.cert)]);
    assert!(
        stderr.contains(s(&pki.key)) || stderr.contains(s(&pki.cert)),
        "stderr:\n{stderr}"
    );
}

const NEEDS_CERT: &str =
    "TLS needs a certificate: start ccserve with --tls-cert FILE --tls-key FILE";

#[test]
fn tls_listeners_without_a_certificate_raise_a_clear_error() {
    let source = r#"
local function try(name, f, ...)
    local ok, err = pcall(f, ...)
    print(name .. " " .. tostring(ok) .. " " .. tostring(err))
end
try("addListener", http.addListener, 0, {tls = true})
try("websocketServer", http.websocketServer, 0, nil, {tls = true})
try("luahttp", require("http.server").listen,
    {host = "127.0.0.1", port = 0, tls = true, onstream = function() end})
http.listen(0, function() end, {tls = true})
print("NOT REACHED")
"#;
    let (lines, code, stderr) = run_client(source, &[], &[]);
    assert_eq!(lines.len(), 3, "stdout {lines:?}; stderr:\n{stderr}");
    for line in &lines {
        assert!(
            line.contains(" false ") && line.contains(NEEDS_CERT),
            "stdout {lines:?}"
        );
    }
    // Uncaught, in http.listen: the script fails with the message.
    assert_eq!(code, Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains(NEEDS_CERT), "stderr:\n{stderr}");
}

#[test]
fn nodemcu_tls_server_without_a_certificate_raises_a_clear_error() {
    let source = "local ok, err = pcall(require('httpserver').createServer, 0, \
                  function() end, {tls = true})\n\
                  print(tostring(ok) .. ' ' .. tostring(err))\n";
    let (lines, code, stderr) = run_client(source, &["--nodemcu"], &[]);
    assert_eq!(lines.len(), 1, "stdout {lines:?}; stderr:\n{stderr}");
    assert!(
        lines[0].starts_with("false ") && lines[0].contains(NEEDS_CERT),
        "stdout {lines:?}"
    );
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
}

// ---------------------------------------------------------------------------------------------
// 9. NodeMCU
// ---------------------------------------------------------------------------------------------

#[test]
fn nodemcu_https_server_is_answered_over_tls() {
    let pki = Pki::new();
    let source = r#"
local srv = require('httpserver').createServer(0, function(req, res)
    local body = {}
    req.ondata = function(self, chunk)
        if chunk then body[#body + 1] = chunk return end
        res:send(nil, 200)
        res:send_header("Content-Type", "text/plain")
        res:send("nodemcu " .. req.method .. " " .. req.url .. "|" .. table.concat(body))
        res:finish()
    end
end, {tls = true})
print('LISTENING ' .. srv:getaddr())
"#;
    let mut args = vec!["--nodemcu"];
    args.extend_from_slice(&pki.server_args());
    let server = Server::start(source, &args);
    let port = server.port;
    assert_eq!(
        curl_ok(&[
            "-4",
            "--cacert",
            s(&pki.ca),
            &format!("https://localhost:{port}/node?x=1")
        ]),
        "nodemcu GET /node?x=1|"
    );
    assert_eq!(
        curl_ok(&[
            "--cacert",
            s(&pki.ca),
            "--data-binary",
            "from curl",
            &format!("https://127.0.0.1:{port}/post")
        ]),
        "nodemcu POST /post|from curl"
    );
    assert_plain_refused(port);
}

// ---------------------------------------------------------------------------------------------
// 10. TLS inside the engine: the Lua thread's direct writes and reads, big bodies both ways,
//     and a WebSocket upgrade on an HTTPS listener
// ---------------------------------------------------------------------------------------------

/// A rustls client on `stream`, trusting `pki`'s CA, for `localhost`; the handshake runs on its
/// first read or write.
fn rustls_client(
    pki: &Pki,
    stream: std::net::TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(conn, stream)
}

/// The body `/size/N` is answered with: N bytes cycling through a pattern that shifts with N.
fn sized_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"0123456789abcdef"[(i + n) % 16]).collect()
}

/// Answers `GET /size/N` with [`sized_body`]`(N)`, and any other request with its body echoed.
const SIZED: &str = r#"
local n = tonumber(req.getURL():match("^/size/(%d+)$"))
if n then
    local pattern = "0123456789abcdef"
    local shift = n % 16
    local unit = pattern:sub(shift + 1) .. pattern:sub(1, shift)
    res.write((unit:rep(math.floor(n / 16) + 1)):sub(1, n))
else
    res.write(req.readAll())
end
res.close()
"#;

/// A CraftOS server over TLS answering [`SIZED`], started with `extra` options too.
fn sized_server(pki: &Pki, extra: &[&str]) -> Server {
    let mut args = pki.server_args().to_vec();
    args.extend_from_slice(extra);
    Server::start(&tls_listen_script(SIZED), &args)
}

/// A keep-alive `GET /size/n`.
fn get_size(n: usize) -> String {
    format!("GET /size/{n} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

#[test]
fn pipelined_responses_to_a_client_that_reads_late_arrive_whole_over_tls() {
    // The client asks for 24 responses at once through a small receive window and reads only
    // then: a direct write of a response (up to 64 KiB) by the Lua thread may find the socket
    // full and leave records in the session, for the connection thread to send before the rest
    // of the response and the next one (the unit tests in `src/tls.rs` force that case).
    let pki = Pki::new();
    let server = sized_server(&pki, &[]);
    let sizes: Vec<usize> = (0..24)
        .map(|i| {
            [
                0, 1, 100, 16_383, 16_385, 40_000, 65_535, 65_536, 65_537, 200_000,
            ][i % 10]
        })
        .collect();
    let mut tls = rustls_client(&pki, common::connect_with_small_window(server.port, 4096));
    let mut requests = String::new();
    for n in &sizes {
        requests.push_str(&get_size(*n));
    }
    tls.write_all(requests.as_bytes()).unwrap();
    for (i, n) in sizes.iter().enumerate() {
        let r = read_response(&mut tls, false).unwrap_or_else(|| panic!("response {i} missing"));
        assert_eq!(r.status, 200, "response {i}");
        assert_eq!(r.body.len(), *n, "response {i}: body length");
        assert!(
            r.body == sized_body(*n),
            "response {i} ({n} bytes): body differs"
        );
    }
}

#[test]
fn many_keep_alive_requests_alternate_lua_thread_and_connection_thread_over_tls() {
    // Answers up to 64 KiB go out from the Lua thread (the connection parked between requests),
    // bigger ones through the connection thread; both share one TLS session in turn. Through a
    // small receive window, the Lua thread's write of a 60 KiB answer may leave records in the
    // session, which the connection thread must then send while the client waits (it sends
    // nothing more until it has the whole answer).
    let pki = Pki::new();
    let server = sized_server(&pki, &[]);
    let mut tls = rustls_client(&pki, common::connect_with_small_window(server.port, 4096));
    for i in 0..200usize {
        let n = match i % 7 {
            3 => 300_000 + i,
            5 => 60_000 + i,
            _ => i * 13,
        };
        tls.write_all(get_size(n).as_bytes()).unwrap();
        let r = read_response(&mut tls, false).unwrap_or_else(|| panic!("response {i} missing"));
        assert_eq!(r.status, 200, "response {i}");
        assert!(
            r.body == sized_body(n),
            "response {i} ({n} bytes): body differs"
        );
    }
}

#[test]
fn a_large_upload_is_echoed_whole_over_tls() {
    let pki = Pki::new();
    let server = sized_server(&pki, &[]);
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut tls = rustls_client(&pki, common::connect(server.port));
    for round in 0..2 {
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).unwrap();
        tls.write_all(&body).unwrap();
        let r = read_response(&mut tls, false).expect("a response");
        assert_eq!(r.status, 200, "round {round}");
        assert!(r.body == body, "round {round}: the echo differs");
    }
}

#[test]
fn websocket_upgrade_on_an_https_listener_echoes_messages() {
    // lua-http's websocket over a `tls = true` listener: the engine hands the TLS connection to
    // the WebSocket engine after the 101. The client is tungstenite over rustls.
    let pki = Pki::new();
    let source = r#"
local http_server = require "http.server"
local websocket = require "http.websocket"
local server = assert(http_server.listen {
    host = "127.0.0.1", port = 0, tls = true,
    onstream = function(server, stream)
        local ws = assert(websocket.new_from_stream(stream, assert(stream:get_headers())))
        assert(ws:accept())
        while true do
            local data, opcode = ws:receive()
            if not data then break end
            assert(ws:send("echo " .. data, opcode))
        end
    end,
})
assert(server:listen())
print("LISTENING " .. select(3, server:localname()))
assert(server:loop())
"#;
    let server = Server::start(source, &pki.server_args());
    let port = server.port;
    let tls = rustls_client(&pki, common::connect(port));
    let (mut ws, answer) =
        tungstenite::client::client(format!("wss://localhost:{port}/ws"), tls).expect("upgrade");
    assert_eq!(answer.status(), 101);
    for i in 0..50 {
        let text = format!("message {i} {}", "x".repeat(i * 500));
        ws.send(tungstenite::Message::text(text.clone())).unwrap();
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => assert_eq!(t.as_str(), format!("echo {text}")),
            other => panic!("message {i}: {other:?}"),
        }
    }
    let big = vec![7u8; 300_000];
    ws.send(tungstenite::Message::binary(big.clone())).unwrap();
    match ws.read().unwrap() {
        tungstenite::Message::Binary(b) => {
            assert_eq!(&b[..5], b"echo ");
            assert!(b[5..] == big[..], "binary echo differs");
        }
        other => panic!("binary: {other:?}"),
    }
    ws.close(None).unwrap();
}

#[test]
fn answers_asked_for_while_the_client_still_reads_an_earlier_one_arrive_whole_over_tls() {
    // The client reads only part of a big answer before asking for a 60 KiB one, so the Lua
    // thread's write of the second may find the socket still full of the first and leave
    // encrypted records in the session, for the connection thread to send (the unit tests in
    // `src/tls.rs` check that part deterministically). With the keep-alive timeout at 60 s, a
    // record left unsent shows as the client's 20 s read timeout, not as a slow pass.
    let pki = Pki::new();
    let server = sized_server(&pki, &["--keep-alive-timeout", "60"]);
    let mut tls = rustls_client(&pki, common::connect_with_small_window(server.port, 4096));
    for round in 0..20 {
        let big = 400_000 + round;
        tls.write_all(get_size(big).as_bytes()).unwrap();
        // Everything but the last 100 KB or so of the first answer.
        let mut first = vec![0u8; big - 100_000];
        tls.read_exact(&mut first).unwrap();
        let small = 60_000 + round;
        tls.write_all(get_size(small).as_bytes()).unwrap();
        let mut rest = vec![0u8; 100_000];
        tls.read_exact(&mut rest).unwrap();
        first.extend_from_slice(&rest);
        // The first answer's head and body, then the start of the second answer.
        let mut stream = std::io::Cursor::new(first).chain(&mut tls);
        let r = read_response(&mut stream, false).expect("the first answer");
        assert_eq!(r.status, 200, "round {round}");
        assert!(
            r.body == sized_body(big),
            "round {round}: first answer differs"
        );
        let r = read_response(&mut stream, false).expect("the second answer");
        assert!(
            r.body == sized_body(small),
            "round {round}: second answer differs"
        );
    }
}

#[test]
fn a_forged_record_ends_its_connection_and_others_go_on() {
    // After one request (the connection is then parked with the Lua thread), bytes that look
    // like a TLS record but were not encrypted by the session: the session fails, an alert goes
    // out, the connection closes; a new connection is served as before.
    let pki = Pki::new();
    let server = https_echo(&pki, &[]);
    for garbage_len in [5usize, 40, 3000] {
        let mut tls = rustls_client(&pki, common::connect(server.port));
        tls.write_all(b"GET /before HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let r = read_response(&mut tls, false).expect("the first answer");
        assert_eq!(r.text(), "GET /before|");
        let mut forged = vec![0x17, 0x03, 0x03];
        forged.extend_from_slice(&(garbage_len as u16).to_be_bytes());
        forged.extend((0..garbage_len).map(|i| (i * 31 % 256) as u8));
        tls.sock.write_all(&forged).unwrap();
        assert!(
            closed_within(&mut tls.sock, QUICK),
            "connection left open after a forged record of {garbage_len} bytes"
        );
        let mut other = rustls_client(&pki, common::connect(server.port));
        other
            .write_all(b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let r = read_response(&mut other, false).expect("an answer on a new connection");
        assert_eq!(r.text(), "GET /after|");
    }
}
