//! The streaming engine without any Lua API: a real listener on 127.0.0.1 and real TCP clients,
//! with the test thread playing the Lua side of each exchange (pushing response parts, asking for
//! body pieces, waiting for [`Event::StreamReady`] as an API's handler would).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::body::BodyError;
use super::exchange::{BodyPoll, Exchange, Part, PushError, Room};
use super::listener::{BodyMode, Listener, ListenerOptions, ResponseTracker};
use super::response::ResponseHead;
use crate::config::Config;
use crate::event::{Event, EventSender, IncomingRequest};
use crate::ws::connection::Limits;
use crate::ws::{WsEventKind, WsOrigin};

/// Bound on every wait; generous for a loaded machine or an emulator.
const WAIT: Duration = Duration::from_secs(30);

/// A listener whose events the test receives.
struct Server {
    listener: Listener,
    events: Receiver<Event>,
    sender: EventSender,
}

fn server(mode: BodyMode, config: Config) -> Server {
    let (tx, rx) = crossbeam_channel::bounded(64);
    let tracker = Arc::new(ResponseTracker::default());
    let sender = EventSender::new(tx, tracker.clone());
    let config = Config {
        bind: "127.0.0.1".parse().expect("loopback"),
        ..config
    };
    let options = ListenerOptions {
        body_mode: mode,
        ..ListenerOptions::whole("test_request")
    };
    let addr = "127.0.0.1:0".parse().expect("loopback");
    let listener = Listener::start(addr, options, Arc::new(config), sender.clone(), tracker)
        .expect("bind a loopback port");
    Server {
        listener,
        events: rx,
        sender,
    }
}

impl Server {
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.listener.port())).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s
    }

    fn next_event(&self) -> Event {
        self.events
            .recv_timeout(WAIT)
            .expect("an event within WAIT")
    }

    /// The next request (stream-ready events for earlier exchanges are skipped), taken as an
    /// API takes it: marked delivered, so the response timeout no longer applies to it.
    fn next_request(&self) -> Box<IncomingRequest> {
        loop {
            match self.next_event() {
                Event::HttpRequest(r) => {
                    r.guard.exchange().mark_delivered();
                    return r;
                }
                Event::StreamReady(_) => continue,
                other => panic!("unexpected event {}", other.name()),
            }
        }
    }

    /// Connects, sends `raw` and takes the request it makes.
    fn request(&self, raw: &[u8]) -> (TcpStream, Box<IncomingRequest>) {
        let mut client = self.connect();
        client.write_all(raw).expect("send the request");
        (client, self.next_request())
    }

    /// Waits for the exchange's stream-ready event.
    fn wait_ready(&self, exchange: &Exchange) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::StreamReady(id)) if id == exchange.id() => return,
                Ok(Event::StreamReady(_)) => {}
                Ok(other) => panic!("unexpected event {}", other.name()),
                Err(_) => panic!("no stream-ready event within WAIT"),
            }
        }
    }

    /// Reads the next body piece as an API would: ask, and wait to be told when it is pending.
    fn read_body(&self, exchange: &Exchange, max: usize) -> BodyPoll {
        loop {
            match exchange.read_body(max) {
                BodyPoll::Pending => self.wait_ready(exchange),
                found => return found,
            }
        }
    }

    /// Queues `part`, first waiting for room as an API's handler would.
    fn push(&self, exchange: &Exchange, part: Part) -> Result<Room, PushError> {
        while !exchange.ask_room() {
            self.wait_ready(exchange);
        }
        exchange.push(part)
    }
}

fn head(status: u16, length: Option<u64>) -> Part {
    Part::Head(ResponseHead {
        status,
        reason: None,
        headers: vec![("X-Test".into(), b"1".to_vec())],
        length,
    })
}

/// Reads until `needle` has been seen; returns everything read.
fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(needle.len()).any(|w| w == needle) {
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "connection closed before {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read failed before {needle:?}: {e}"),
        }
    }
    got
}

/// Reads to end of stream (the server closed the connection).
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => got,
        Err(e) => panic!("read failed: {e}"),
    }
}

/// Whether nothing arrives on `stream` for `window` (the server is waiting for the script).
fn silent_for(stream: &mut TcpStream, window: Duration) -> bool {
    stream.set_read_timeout(Some(window)).expect("timeout");
    let mut byte = [0u8; 1];
    let silent = matches!(
        stream.read(&mut byte),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
    );
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    silent
}

/// Whether the tests run under an emulator (`scripts/cross-test.sh` says so): qemu-user's own
/// translation buffers then grow the process's RSS as code runs for the first time, so RSS says
/// nothing about what the server holds and the memory bounds are checked natively only.
fn under_emulator() -> bool {
    std::env::var_os("CCSERVE_TEST_EMULATED").is_some()
}

/// Checks that the RSS stayed within 8 MiB of `start` (KiB), unless emulated.
fn assert_memory_flat(what: &str, start: u64, peak: u64) {
    if under_emulator() {
        println!("under an emulator: RSS not checked ({start} -> {peak} KiB)");
        return;
    }
    assert!(
        peak < start + 8 * 1024,
        "RSS grew from {start} to {peak} KiB while {what}"
    );
}

/// The process's resident set size in KiB (from `/proc`; 0 if unreadable).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Held by each test that measures the process's memory, so no other such test moves a
/// gigabyte through the same process meanwhile.
static MEMORY_TEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Bytes moved by the large-transfer tests: 1 GiB, unless `CCSERVE_STREAM_TEST_MIB` says
/// otherwise (`scripts/cross-test.sh` lowers it under qemu, where loopback copies are slow).
fn transfer_bytes() -> u64 {
    let mib = std::env::var("CCSERVE_STREAM_TEST_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1024);
    mib * 1024 * 1024
}

#[test]
fn each_part_reaches_the_client_before_the_next_is_pushed() {
    let srv = server(BodyMode::Streamed, Config::default());
    let (mut client, request) = srv.request(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n");
    let exchange = request.guard.exchange();
    exchange.push(head(200, None)).unwrap();
    exchange.push(Part::Data(b"first".to_vec())).unwrap();
    let got = read_until(&mut client, b"5\r\nfirst\r\n");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
    assert!(!text.contains("Content-Length"), "{text}");
    assert!(text.contains("X-Test: 1\r\n"), "{text}");
    // Only now does the second part exist.
    exchange.push(Part::Data(b"second".to_vec())).unwrap();
    exchange.push(Part::End).unwrap();
    read_until(&mut client, b"6\r\nsecond\r\n0\r\n\r\n");
    assert_eq!(exchange.push(Part::End), Err(PushError::Closed));
    // Keep-alive: a second request on the same connection is served.
    client
        .write_all(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let second = srv.next_request();
    second.guard.exchange().close().unwrap();
    read_until(&mut client, b"Content-Length: 0\r\n\r\n");
}

#[test]
fn a_response_that_breaks_its_content_length_ends_the_connection() {
    let srv = server(BodyMode::Streamed, Config::default());
    // Too long: the extra data is refused and the connection closed.
    let (mut client, request) = srv.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let exchange = request.guard.exchange();
    exchange.push(head(200, Some(3))).unwrap();
    exchange.push(Part::Data(b"abcd".to_vec())).unwrap();
    let got = read_to_close(&mut client);
    assert!(
        !got.ends_with(b"abcd"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(
        srv.push(exchange, Part::Data(b"x".to_vec())),
        Err(PushError::Gone)
    );

    // Too short: what was promised never completes; the connection closes after what was sent.
    let (mut client, request) = srv.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let exchange = request.guard.exchange();
    exchange.push(head(200, Some(10))).unwrap();
    exchange.push(Part::Data(b"abc".to_vec())).unwrap();
    exchange.push(Part::End).unwrap();
    let got = String::from_utf8_lossy(&read_to_close(&mut client)).into_owned();
    assert!(got.contains("Content-Length: 10\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nabc"), "{got}");
}

#[test]
fn a_streamed_body_is_read_only_when_asked_and_100_continue_waits_for_it() {
    let srv = server(BodyMode::Streamed, Config::default());
    let mut client = srv.connect();
    client
        .write_all(
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let request = srv.next_request();
    let exchange = request.guard.exchange();
    // The script has not asked for the body: no 100 Continue.
    assert!(silent_for(&mut client, Duration::from_millis(300)));
    assert_eq!(exchange.read_body(4), BodyPoll::Pending);
    read_until(&mut client, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"0123456789").unwrap();
    let mut body = Vec::new();
    loop {
        match srv.read_body(exchange, 4) {
            BodyPoll::Data(piece) => {
                assert!(piece.len() <= 4, "{} bytes", piece.len());
                body.extend_from_slice(&piece);
            }
            BodyPoll::End => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(body, b"0123456789");
    exchange.close().unwrap();
    read_until(&mut client, b"Content-Length: 0\r\n\r\n");
}

#[test]
fn the_script_may_send_100_continue_itself_once_and_only_before_the_head() {
    let srv = server(BodyMode::Streamed, Config::default());
    let mut client = srv.connect();
    client
        .write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let request = srv.next_request();
    let exchange = request.guard.exchange();
    exchange.push(Part::Continue).unwrap();
    read_until(&mut client, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"ok").unwrap();
    // Reading the body now sends no second 100.
    assert_eq!(srv.read_body(exchange, 64), BodyPoll::Data(b"ok".to_vec()));
    exchange.push(head(200, Some(0))).unwrap();
    assert_eq!(exchange.push(Part::Continue), Err(PushError::HeadSent));
    exchange.push(Part::End).unwrap();
    let rest = String::from_utf8_lossy(&read_until(&mut client, b"\r\n\r\n")).into_owned();
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
    assert!(!rest.contains("100 Continue"), "{rest}");
}

#[test]
fn an_unread_body_behind_a_refusal_closes_the_connection_without_100() {
    let srv = server(BodyMode::Streamed, Config::default());
    let mut client = srv.connect();
    client
        .write_all(
            b"PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let request = srv.next_request();
    let exchange = request.guard.exchange();
    exchange
        .with_head(|r| r.status = 413)
        .expect("head not sent yet");
    exchange.close().unwrap();
    let got = String::from_utf8_lossy(&read_to_close(&mut client)).into_owned();
    assert!(got.starts_with("HTTP/1.1 413 "), "{got}");
    assert!(!got.contains("100 Continue"), "{got}");
    assert!(got.contains("Connection: close\r\n"), "{got}");
}

#[test]
fn a_body_over_the_stream_limit_fails_the_read() {
    let config = Config {
        max_stream_body: 8,
        ..Config::default()
    };
    let srv = server(BodyMode::Streamed, config);
    let (_client, request) = srv.request(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n");
    let exchange = request.guard.exchange();
    assert_eq!(
        srv.read_body(exchange, 64),
        BodyPoll::Data(b"hello".to_vec())
    );
    assert_eq!(
        srv.read_body(exchange, 64),
        BodyPoll::Failed(BodyError::TooLarge)
    );
}

#[test]
fn a_large_upload_is_read_piece_by_piece_in_bounded_memory() {
    let _alone = MEMORY_TEST.lock().unwrap_or_else(|p| p.into_inner());
    let total = transfer_bytes();
    let srv = server(BodyMode::Streamed, Config::default());
    let mut client = srv.connect();
    let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let sent_block = block.clone();
    let sender = std::thread::spawn(move || {
        let block = sent_block;
        let head = format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n");
        client.write_all(head.as_bytes()).unwrap();
        let mut sent = 0u64;
        while sent < total {
            let n = block.len().min((total - sent) as usize);
            client.write_all(&block[..n]).unwrap();
            sent += n as u64;
        }
        read_until(&mut client, b"\r\n\r\n")
    });
    let request = srv.next_request();
    let exchange = request.guard.exchange();
    let path = std::env::temp_dir().join(format!("ccserve-upload-{}", std::process::id()));
    // Removed however the test ends (a failed one must not leave a gibibyte behind).
    struct RemoveOnDrop(std::path::PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = RemoveOnDrop(path.clone());
    let mut file = std::fs::File::create(&path).expect("temp file");
    let start = rss_kib();
    let mut peak = start;
    let (mut received, mut sum) = (0u64, 0u64);
    loop {
        match srv.read_body(exchange, 64 * 1024) {
            BodyPoll::Data(piece) => {
                // Every byte arrives in order: the client sends `block` over and over.
                let mut at = (received % block.len() as u64) as usize;
                for part in piece.chunks(block.len()) {
                    let first = part.len().min(block.len() - at);
                    assert_eq!(part[..first], block[at..at + first], "at byte {received}");
                    assert_eq!(
                        part[first..],
                        block[..part.len() - first],
                        "at byte {received}"
                    );
                    at = (at + part.len()) % block.len();
                }
                sum = sum.wrapping_add(piece.len() as u64);
                file.write_all(&piece).expect("write temp file");
                received += piece.len() as u64;
                if received % (64 * 1024 * 1024) < piece.len() as u64 {
                    peak = peak.max(rss_kib());
                }
            }
            BodyPoll::End => break,
            other => panic!("unexpected {other:?} after {received} bytes"),
        }
    }
    drop(file);
    let on_disk = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    exchange.close().unwrap();
    let reply = String::from_utf8_lossy(&sender.join().unwrap()).into_owned();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert_eq!(received, total);
    assert_eq!(on_disk, total);
    assert_eq!(sum, total);
    println!(
        "uploaded {} MiB; RSS {start} KiB at the start, peak {peak} KiB",
        total >> 20
    );
    assert_memory_flat("streaming", start, peak);
}

#[test]
fn a_large_response_is_streamed_in_bounded_memory_at_the_clients_pace() {
    let _alone = MEMORY_TEST.lock().unwrap_or_else(|p| p.into_inner());
    let total = transfer_bytes();
    let srv = server(BodyMode::Streamed, Config::default());
    let mut client = srv.connect();
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let reader = std::thread::spawn(move || {
        let head = read_until(&mut client, b"\r\n\r\n");
        let mut left = total
            - (head.len() - head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4) as u64;
        let mut buf = vec![0u8; 64 * 1024];
        let mut peak = 0u64;
        let mut seen = 0u64;
        while left > 0 {
            let n = client.read(&mut buf).expect("body bytes");
            assert!(n > 0, "closed with {left} bytes left");
            left -= n as u64;
            seen += n as u64;
            if seen % (64 * 1024 * 1024) < n as u64 {
                peak = peak.max(rss_kib());
            }
        }
        (String::from_utf8_lossy(&head).into_owned(), peak)
    });
    let request = srv.next_request();
    let exchange = request.guard.exchange();
    let start = rss_kib();
    srv.push(exchange, head(200, Some(total))).unwrap();
    let piece = vec![b'x'; 64 * 1024];
    let mut pushed = 0u64;
    let mut full = 0;
    while pushed < total {
        let n = piece.len().min((total - pushed) as usize);
        if srv.push(exchange, Part::Data(piece[..n].to_vec())).unwrap() == Room::Full {
            full += 1;
        }
        pushed += n as u64;
    }
    srv.push(exchange, Part::End).unwrap();
    let (head_text, peak) = reader.join().unwrap();
    assert!(
        head_text.contains(&format!("Content-Length: {total}\r\n")),
        "{head_text}"
    );
    println!(
        "streamed {} MiB; the buffer was full {full} times; RSS {start} KiB at the start, peak {peak} KiB",
        total >> 20
    );
    assert!(
        full > 0,
        "the client never fell behind: the bound was not exercised"
    );
    assert_memory_flat("streaming", start, peak);
}

#[test]
fn a_client_vanishing_mid_stream_makes_the_next_push_fail() {
    let srv = server(BodyMode::Streamed, Config::default());
    let (mut client, request) = srv.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let exchange = request.guard.exchange();
    exchange.push(head(200, None)).unwrap();
    exchange.push(Part::Data(b"hello".to_vec())).unwrap();
    read_until(&mut client, b"hello");
    drop(client);
    // Writes to a closed peer fail within a few attempts (the first may still be accepted by
    // the kernel); the exchange then refuses more.
    let piece = vec![b'y'; 64 * 1024];
    let deadline = Instant::now() + WAIT;
    let failed = loop {
        match srv.push(exchange, Part::Data(piece.clone())) {
            Err(e) => break e,
            Ok(_) if Instant::now() > deadline => panic!("pushes kept succeeding"),
            Ok(_) => {}
        }
    };
    assert_eq!(failed, PushError::Gone);
    assert!(exchange.is_gone());
}

#[test]
fn an_upgrade_hands_the_connection_and_the_bytes_behind_the_request_to_a_websocket() {
    let srv = server(BodyMode::Streamed, Config::default());
    let mut client = srv.connect();
    // The request and a first (masked) text frame "hi" in one write: the frame is read along
    // with the head and must reach the WebSocket.
    let mut bytes = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    let mask = [1u8, 2, 3, 4];
    bytes.extend_from_slice(&[0x81, 0x82]);
    bytes.extend_from_slice(&mask);
    bytes.extend(b"hi".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    client.write_all(&bytes).unwrap();
    let request = srv.next_request();
    let exchange = request.guard.exchange();
    let key = request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, v)| v.clone())
        .unwrap();
    let accept = crate::ws::handshake::accept_key(&key);
    exchange
        .push(Part::Head(ResponseHead {
            status: 101,
            reason: None,
            headers: vec![
                ("Upgrade".into(), b"websocket".to_vec()),
                ("Connection".into(), b"Upgrade".to_vec()),
                ("Sec-WebSocket-Accept".into(), accept.into_bytes()),
            ],
            length: None,
        }))
        .unwrap();
    let events = srv.sender.clone();
    let limits = Limits::of(&Config::default());
    exchange
        .push(Part::Upgrade(Box::new(move |upgraded| {
            crate::ws::server::serve_upgraded(
                upgraded,
                WsOrigin::Server { port: 0 },
                &events,
                limits,
            )
        })))
        .unwrap();
    let head = String::from_utf8_lossy(&read_until(&mut client, b"\r\n\r\n")).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("Connection: Upgrade\r\n"), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    assert!(
        !head.contains("keep-alive") && !head.contains("Content-Length"),
        "{head}"
    );
    let link = match srv.next_event() {
        Event::Ws(ev) => match ev.kind {
            WsEventKind::Connected(link) => link,
            other => panic!("expected Connected, got {other:?}"),
        },
        other => panic!("expected a websocket event, got {}", other.name()),
    };
    match srv.next_event() {
        Event::Ws(ev) => match ev.kind {
            WsEventKind::Message(data, binary) => {
                assert_eq!((data.as_slice(), binary), (&b"hi"[..], false))
            }
            other => panic!("expected the message, got {other:?}"),
        },
        other => panic!("expected a websocket event, got {}", other.name()),
    }
    link.0.send(b"hello back".to_vec(), false).unwrap();
    let mut ws =
        tungstenite::WebSocket::from_raw_socket(client, tungstenite::protocol::Role::Client, None);
    match ws.read().expect("a message") {
        tungstenite::Message::Text(t) => assert_eq!(t.as_str(), "hello back"),
        other => panic!("unexpected {other:?}"),
    }
}
