//! `http.websocketServer` against an independent client (tungstenite's blocking client, and a
//! hand-written handshake), all over 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Server, WAIT};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::{Message, WebSocket};

/// Echoes every message to its sender. Prints `CONNECT` per client and
/// `CLOSED <reason> <code>` when one leaves; the message `__close_server` closes the server.
const ECHO: &str = r#"
local server = assert(http.websocketServer(0))
print("LISTENING " .. server.port)
local clients = {}
while true do
    local event, a, b, c = os.pullEvent()
    if event == "websocket_server_connect" then
        clients[b.clientID] = b
        print("CONNECT")
    elseif event == "websocket_server_message" then
        if b == "__close_server" then
            server.close()
            print("SERVER CLOSED")
        elseif clients[a] then
            clients[a].send(b, c)
        end
    elseif event == "websocket_server_closed" then
        clients[a] = nil
        print("CLOSED " .. tostring(b) .. " " .. tostring(c))
    end
end
"#;

fn echo_server() -> Server {
    Server::start(ECHO, &[])
}

/// A tungstenite client connected to `port`, with bounded reads and writes.
fn ws_connect(port: u16) -> WebSocket<TcpStream> {
    let stream = common::connect(port);
    let (ws, response) = tungstenite::client::client(format!("ws://127.0.0.1:{port}/"), stream)
        .unwrap_or_else(|e| panic!("handshake with port {port}: {e}"));
    assert_eq!(response.status().as_u16(), 101);
    ws
}

/// The next data message (pings and pongs are skipped).
fn read_data(ws: &mut WebSocket<TcpStream>) -> Message {
    for _ in 0..100 {
        match ws.read().expect("read a message") {
            Message::Ping(_) | Message::Pong(_) => continue,
            m => return m,
        }
    }
    panic!("only control frames arrived");
}

/// Reads until a Close frame arrives; returns it (`None` for a Close without payload).
fn read_close(ws: &mut WebSocket<TcpStream>) -> Option<CloseFrame> {
    for _ in 0..10_000 {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame,
            Ok(_) => continue,
            Err(e) => panic!("connection ended without a Close frame: {e}"),
        }
    }
    panic!("no Close frame");
}

#[test]
fn text_and_binary_echo() {
    let server = echo_server();
    let mut ws = ws_connect(server.port);
    ws.send(Message::text("hello, world")).unwrap();
    assert_eq!(read_data(&mut ws), Message::text("hello, world"));
    let bin = vec![0u8, 1, 2, 0, 255, 0];
    ws.send(Message::binary(bin.clone())).unwrap();
    assert_eq!(read_data(&mut ws), Message::binary(bin));
    ws.send(Message::text("")).unwrap();
    assert_eq!(read_data(&mut ws), Message::text(""));
    ws.close(None).unwrap();
    read_close(&mut ws);
}

#[test]
fn fifty_concurrent_clients_get_their_own_echoes_in_order() {
    const CLIENTS: usize = 50;
    const MESSAGES: usize = 100;
    let server = echo_server();
    let port = server.port;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut ws = ws_connect(port);
                for m in 0..MESSAGES {
                    ws.send(Message::text(format!("client {c} message {m}")))
                        .unwrap();
                }
                for m in 0..MESSAGES {
                    let got = read_data(&mut ws);
                    assert_eq!(
                        got,
                        Message::text(format!("client {c} message {m}")),
                        "client {c}"
                    );
                }
                ws.close(None).unwrap();
                read_close(&mut ws);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn burst_into_a_full_socket_arrives_whole_and_in_order() {
    // The script sends 300 messages of 20 KB at once to a client with a tiny receive buffer that
    // reads only afterwards: the first frames go straight from the Lua thread, the socket fills
    // mid-frame, and the rest (a frame's tail, then the queued messages) goes through the writer
    // thread. Every byte must arrive, in order, with the frames intact.
    let server = Server::start(
        r#"
local server = assert(http.websocketServer(0))
print("LISTENING " .. server.port)
while true do
    local event, a, b = os.pullEvent()
    if event == "websocket_server_connect" then
        for i = 1, 300 do
            b.send(string.format("%05d", i) .. string.rep(string.char(65 + i % 26), 20000))
        end
        print("SENT")
    end
end
"#,
        &[],
    );
    let stream = common::connect_with_small_window(server.port, 2048);
    let (mut ws, _) =
        tungstenite::client::client(format!("ws://127.0.0.1:{}/", server.port), stream)
            .expect("handshake");
    server.expect_line("SENT");
    for i in 1..=300 {
        let want = format!("{i:05}") + &String::from(char::from(65 + (i % 26) as u8)).repeat(20000);
        match read_data(&mut ws) {
            Message::Text(text) => assert!(
                text.as_str() == want,
                "message {i}: {} bytes starting {:?}",
                text.len(),
                &text.as_str()[..text.len().min(8)]
            ),
            other => panic!("message {i}: {other:?}"),
        }
    }
}

#[test]
fn four_mib_message_echoes_intact() {
    let server = echo_server();
    let mut ws = ws_connect(server.port);
    let data: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    ws.send(Message::binary(data.clone())).unwrap();
    match read_data(&mut ws) {
        Message::Binary(got) => {
            assert_eq!(got.len(), data.len());
            assert!(got[..] == data[..], "4 MiB echo differs");
        }
        other => panic!("expected a binary message, got {other:?}"),
    }
}

#[test]
fn fragmented_message_arrives_as_one() {
    let server = echo_server();
    let mut ws = ws_connect(server.port);
    let frames = [
        Frame::message(b"hel".to_vec(), OpCode::Data(Data::Text), false),
        Frame::message(b"lo, ".to_vec(), OpCode::Data(Data::Continue), false),
        Frame::message(b"world".to_vec(), OpCode::Data(Data::Continue), true),
    ];
    for f in frames {
        ws.send(Message::Frame(f)).unwrap();
    }
    ws.send(Message::text("after")).unwrap();
    assert_eq!(read_data(&mut ws), Message::text("hello, world"));
    // Nothing else came back for the fragments: the next echo is the next message.
    assert_eq!(read_data(&mut ws), Message::text("after"));
}

#[test]
fn ping_is_answered_with_pong() {
    let server = echo_server();
    let mut ws = ws_connect(server.port);
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    let pong = match ws.read().expect("read") {
        Message::Pong(p) => p,
        other => panic!("expected a pong, got {other:?}"),
    };
    assert_eq!(&pong[..], &b"are you there"[..]);
    // The ping produced no message for the script: the next echo is the next message.
    ws.send(Message::text("next")).unwrap();
    assert_eq!(read_data(&mut ws), Message::text("next"));
}

#[test]
fn dropped_connection_gives_closed_event_with_nil_reason() {
    let server = echo_server();
    let mut ws = ws_connect(server.port);
    ws.send(Message::text("x")).unwrap();
    assert_eq!(read_data(&mut ws), Message::text("x"));
    drop(ws); // no Close frame: just the TCP FIN
    let line = server
        .line_starting("CLOSED ", WAIT)
        .unwrap_or_else(|| panic!("no CLOSED line; stderr:\n{}", server.stderr()));
    assert_eq!(line, "CLOSED nil nil");
}

#[test]
fn client_close_code_and_reason_reach_the_script() {
    let server = echo_server();
    let mut ws = ws_connect(server.port);
    ws.close(Some(CloseFrame {
        code: CloseCode::from(4001),
        reason: "bye".into(),
    }))
    .unwrap();
    // The server answers the Close handshake.
    read_close(&mut ws);
    let line = server
        .line_starting("CLOSED ", WAIT)
        .unwrap_or_else(|| panic!("no CLOSED line; stderr:\n{}", server.stderr()));
    assert_eq!(line, "CLOSED bye 4001");
}

#[test]
fn server_close_closes_connected_clients_with_1001() {
    let server = echo_server();
    let mut clients: Vec<_> = (0..3).map(|_| ws_connect(server.port)).collect();
    for _ in 0..3 {
        server.line_starting("CONNECT", WAIT).expect("CONNECT line");
    }
    let threads = common::threads_of(server.pid());
    clients[0].send(Message::text("__close_server")).unwrap();
    server
        .line_starting("SERVER CLOSED", WAIT)
        .expect("SERVER CLOSED line");
    // close() returned only after the accept thread and each client's reader and writer had
    // finished their work (3 × 2 + 1 threads fewer). A thread that has finished still takes a
    // moment to leave /proc: a client thread releases its slot in the server just before it
    // exits, and on a loaded machine it can be preempted in between; under qemu-user, joined
    // threads linger longer (see `common::under_emulator`). So the count may take until WAIT
    // to settle.
    let pid = server.pid();
    let after = common::settles_to(threads.saturating_sub(3 * 2 + 1), || {
        common::threads_of(pid)
    });
    assert!(
        after + 3 * 2 < threads,
        "threads: {threads} with 3 clients, {after} after close()"
    );
    for (i, ws) in clients.iter_mut().enumerate() {
        let frame = read_close(ws).unwrap_or_else(|| panic!("client {i}: Close without code"));
        assert_eq!(u16::from(frame.code), 1001, "client {i}");
    }
    // The port no longer accepts connections.
    assert!(
        TcpStream::connect(("127.0.0.1", server.port)).is_err(),
        "port still accepting after server.close()"
    );
}

#[test]
fn message_over_the_limit_closes_with_1009() {
    const SIZE: usize = 17 * 1024 * 1024;
    let server = echo_server();
    let mut ws = ws_connect(server.port);
    // Write one masked 17 MiB binary frame by hand on another thread (the server stops reading
    // once it sees the length), and read the server's answer here.
    let mut raw = ws.get_ref().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut head = vec![0x82u8, 0x80 | 127];
        head.extend_from_slice(&(SIZE as u64).to_be_bytes());
        head.extend_from_slice(&[0, 0, 0, 0]); // zero mask: payload goes out as is
        if raw.write_all(&head).is_err() {
            return;
        }
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..SIZE / chunk.len() {
            if raw.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let frame = read_close(&mut ws).expect("Close with a code");
    assert_eq!(u16::from(frame.code), 1009);
    let _ = ws.get_ref().shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    server
        .line_starting("CLOSED ", WAIT)
        .expect("the script saw the client close");
}

#[test]
fn plain_http_request_gets_426() {
    let server = echo_server();
    let resp = common::get(server.port, "/");
    assert_eq!(resp.status, 426, "{}", resp.status_line);
    // The server still works for WebSocket clients.
    let mut ws = ws_connect(server.port);
    ws.send(Message::text("ok")).unwrap();
    assert_eq!(read_data(&mut ws), Message::text("ok"));
}

/// A hand-written upgrade request for `port` (the RFC 6455 sample key).
fn upgrade_request(port: u16) -> Vec<u8> {
    format!(
        "GET /chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A masked, final text frame carrying `payload` (under 126 bytes).
fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads the handshake response head and checks it is the 101 for the sample key.
fn expect_101(s: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 8192, "response head too long");
        s.read_exact(&mut byte).expect("handshake response");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "Sec-WebSocket-Accept missing: {head}"
    );
}

/// Reads one unmasked text frame (under 126 bytes) and checks its payload.
fn expect_text_frame(s: &mut TcpStream, payload: &[u8]) {
    let mut frame = [0u8; 2];
    s.read_exact(&mut frame).expect("echo frame header");
    assert_eq!(frame, [0x81, payload.len() as u8], "unmasked text frame");
    let mut echoed = vec![0u8; payload.len()];
    s.read_exact(&mut echoed).expect("echo payload");
    assert_eq!(&echoed[..], payload);
}

#[test]
fn hand_written_handshake_then_frame_echoes() {
    // The control for the next test: the same bytes in two writes, after the 101.
    let server = echo_server();
    let mut s = common::connect(server.port);
    s.write_all(&upgrade_request(server.port)).unwrap();
    expect_101(&mut s);
    s.write_all(&masked_text_frame(b"late bird")).unwrap();
    expect_text_frame(&mut s, b"late bird");
}

#[test]
fn frame_in_the_same_write_as_the_upgrade_request_is_not_lost() {
    let server = echo_server();
    let mut s = common::connect(server.port);
    let mut bytes = upgrade_request(server.port);
    bytes.extend(masked_text_frame(b"early bird"));
    s.write_all(&bytes).unwrap();
    expect_101(&mut s);
    expect_text_frame(&mut s, b"early bird");
}

#[test]
fn clients_over_the_limit_are_closed_with_1013_and_others_unaffected() {
    let server = Server::start(ECHO, &["--ws-max-clients", "1"]);
    let mut first = ws_connect(server.port);
    // The 101 goes out before the client is admitted: wait until the first one is, so that the
    // second is the one over the limit.
    server.line_starting("CONNECT", WAIT).expect("CONNECT line");
    let mut second = ws_connect(server.port);
    let frame = read_close(&mut second).expect("a Close frame for the second client");
    assert_eq!(u16::from(frame.code), 1013);
    first.send(Message::text("still here")).unwrap();
    assert_eq!(read_data(&mut first), Message::text("still here"));
}

/// The older API (seed 000): `http.websocketAsync(port)` starts a server whose events carry the
/// port first and the client value last; it stops once its last client has left.
const LEGACY_ECHO: &str = r#"
local ok, port = http.websocketAsync(0)
print("LISTENING " .. port)
local clients = {}
while true do
    local ev = table.pack(os.pullEvent())
    if ev[1] == "websocket_success" then
        clients[ev[4]] = ev[3]
        print("SUCCESS " .. tostring(ev[2] == port) .. " " .. type(ev[4]))
    elseif ev[1] == "websocket_message" and ev[2] == port then
        clients[ev[5]].send(ev[3], ev[4])
    elseif ev[1] == "websocket_closed" then
        print("CLOSED " .. tostring(ev[2] == port) .. " " .. tostring(clients[ev[3]] ~= nil) .. " " .. ev.n)
    elseif ev[1] == "websocket_server_closed" then
        print("SERVER_CLOSED " .. tostring(ev[2] == port) .. " " .. ev.n)
        return
    end
end
"#;

#[test]
fn older_api_server_echoes_and_stops_after_its_last_client() {
    let mut server = Server::start(LEGACY_ECHO, &[]);
    let mut ws = ws_connect(server.port);
    assert_eq!(
        server.line_starting("SUCCESS", WAIT).as_deref(),
        Some("SUCCESS true userdata")
    );
    ws.send(Message::text("old")).unwrap();
    assert_eq!(read_data(&mut ws), Message::text("old"));
    ws.close(None).unwrap();
    // The server answers the Close (read_close fails if the connection just ends).
    read_close(&mut ws);
    assert_eq!(
        server.line_starting("CLOSED", WAIT).as_deref(),
        Some("CLOSED true true 3")
    );
    assert_eq!(
        server.line_starting("SERVER_CLOSED", WAIT).as_deref(),
        Some("SERVER_CLOSED true 2")
    );
    let status = server.wait_exit(WAIT).expect("script ended");
    assert!(status.success());
}

#[test]
fn invalid_utf8_in_a_text_message_is_closed_with_1007() {
    let server = echo_server();
    let mut s = common::connect(server.port);
    s.write_all(&upgrade_request(server.port)).unwrap();
    expect_101(&mut s);
    s.write_all(&masked_text_frame(&[b'o', b'k', 0xff, 0xfe]))
        .unwrap();
    // The answer is a Close frame (opcode 8) whose payload starts with the code 1007.
    let mut header = [0u8; 2];
    s.read_exact(&mut header).expect("close frame header");
    assert_eq!(header[0], 0x88, "a final Close frame");
    let mut payload = vec![0u8; (header[1] & 0x7f) as usize];
    s.read_exact(&mut payload).expect("close payload");
    assert!(payload.len() >= 2, "close frame carries a code");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1007);
    // Other clients are unaffected.
    let mut ws = ws_connect(server.port);
    ws.send(Message::text("fine")).unwrap();
    assert_eq!(read_data(&mut ws), Message::text("fine"));
}

/// An upgrade request without `Sec-WebSocket-Key`, or with another protocol version, is answered
/// `400` and closed; the server keeps accepting clients.
#[test]
fn invalid_upgrade_requests_get_400() {
    let server = echo_server();
    for bad in [
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ] {
        let mut s = common::connect(server.port);
        s.write_all(bad.as_bytes()).unwrap();
        let resp = common::read_response(&mut s, false).expect("an answer");
        assert_eq!(resp.status, 400, "{bad:?}: {}", resp.status_line);
    }
    let mut ws = ws_connect(server.port);
    ws.send(Message::text("still serving")).unwrap();
    assert_eq!(read_data(&mut ws), Message::text("still serving"));
}

/// The script's WebSocket client against a hand-written server: prints how the connection
/// went, then the first message.
const CLIENT: &str = r#"
local port = ...
local ws, err = http.websocket("ws://127.0.0.1:" .. port .. "/chat?room=1", { ["X-Token"] = "abc" })
print("OPEN " .. tostring(ws and true) .. " " .. tostring(err))
if ws then
    print("MSG " .. tostring(ws.receive(5)))
    ws.close()
end
"#;

/// Accepts one connection on `listener`, reads the opening request's head, and answers with
/// `answer(key)` (the key the client sent); returns the head it read.
fn hand_written_server(
    listener: std::net::TcpListener,
    answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                s.read(&mut byte).unwrap(),
                1,
                "the request head ended early"
            );
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .expect("a Sec-WebSocket-Key")
            .to_string();
        s.write_all(&answer(&key)).unwrap();
        // Wait for the client's close (or its going away) before dropping the socket.
        let mut rest = [0u8; 256];
        let _ = s.read(&mut rest);
        head
    })
}

/// The client sends a well-formed opening request with the script's headers, checks the
/// server's accept key with an implementation not its own (tungstenite's), and keeps the frame
/// that arrived in the same segment as the `101` head.
#[test]
fn client_handshake_keeps_a_frame_sent_with_the_101() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server_thread = hand_written_server(listener, |key| {
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(b"\x81\x05first"); // an unmasked text frame, in the same write
        out
    });
    let server = Server::spawn(CLIENT, &[], &[&port]);
    server.expect_line("OPEN true nil");
    server.expect_line("MSG first");
    let head = server_thread.join().unwrap();
    assert!(head.starts_with("GET /chat?room=1 HTTP/1.1\r\n"), "{head}");
    for field in [
        format!("Host: 127.0.0.1:{port}\r\n"),
        "Upgrade: websocket\r\n".into(),
        "Connection: Upgrade\r\n".into(),
        "Sec-WebSocket-Version: 13\r\n".into(),
        "X-Token: abc\r\n".into(),
    ] {
        assert!(head.contains(&field), "{field:?} missing from {head}");
    }
}

/// A server whose accept key is wrong, or which does not switch protocols, fails the
/// connection with a message saying which.
#[test]
fn client_handshake_refuses_wrong_answers() {
    for (answer, message) in [
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            "OPEN false Handshake failed: the server's Sec-WebSocket-Accept does not match the \
             key sent",
        ),
        (
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
            "OPEN false Handshake failed: the server answered 403 Forbidden instead of \
             switching to WebSocket",
        ),
    ] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let server_thread = hand_written_server(listener, move |_| answer.as_bytes().to_vec());
        let server = Server::spawn(CLIENT, &[], &[&port]);
        server.expect_line(message);
        drop(server);
        server_thread.join().unwrap();
    }
}
