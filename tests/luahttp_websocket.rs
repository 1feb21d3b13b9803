//! lua-http's `http.websocket` (server side) and `http.request` on ccserve, against the real
//! binary with real clients: tungstenite for WebSockets, raw TCP for HTTP.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Instant;

use common::{connect, get, read_response, Server, WAIT};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{client::IntoClientRequest, Message, WebSocket};

/// A lua-http server whose handler is `handler` (Lua, with `stream`, `req` and `http_websocket`
/// in scope); prints `LISTENING <port>`.
fn server(handler: &str, extra: &[&str]) -> Server {
    let source = format!(
        "local http_server = require 'http.server'\n\
         local http_headers = require 'http.headers'\n\
         local http_websocket = require 'http.websocket'\n\
         local cqueues = require 'cqueues'\n\
         local server = assert(http_server.listen {{ host = '127.0.0.1', port = 0,\n\
           onstream = function(_, stream)\n\
             local req = assert(stream:get_headers())\n\
             {handler}\n\
           end }})\n\
         assert(server:listen())\n\
         print('LISTENING ' .. select(3, server:localname()))\n\
         assert(server:loop())\n"
    );
    Server::start(&source, extra)
}

type Ws = WebSocket<TcpStream>;

fn ws_connect(port: u16, protocols: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let stream = connect(port);
    let mut request = format!("ws://127.0.0.1:{port}/")
        .into_client_request()
        .expect("request");
    if let Some(p) = protocols {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    match tungstenite::client::client(request, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => {
            panic!("a blocking handshake cannot be interrupted")
        }
    }
}

fn next_message(ws: &mut Ws) -> Message {
    loop {
        match ws.read().expect("a message") {
            Message::Pong(_) => continue,
            other => return other,
        }
    }
}

const ECHO: &str = "local ws = assert(http_websocket.new_from_stream(stream, req))\n\
    assert(ws:accept())\n\
    for data, kind in ws:each() do assert(ws:send(data, kind)) end\n\
    print('ECHO ENDED')";

#[test]
fn echo_keeps_text_and_binary_and_reassembles_fragments() {
    let srv = server(ECHO, &[]);
    let mut ws = ws_connect(srv.port, None).expect("handshake");
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("hello"));
    ws.send(Message::binary(vec![0u8, 1, 255])).unwrap();
    assert_eq!(next_message(&mut ws), Message::binary(vec![0u8, 1, 255]));
    let big = "x".repeat(200_000);
    ws.send(Message::text(big.clone())).unwrap();
    assert_eq!(next_message(&mut ws), Message::text(big));
    ws.close(None).unwrap();
    srv.expect_line("ECHO ENDED");
}

#[test]
fn the_peers_close_reaches_receive_with_its_reason_and_code() {
    let srv = server(
        "local ws = assert(http_websocket.new_from_stream(stream, req))\n\
         assert(ws:accept())\n\
         local data, reason, code = ws:receive()\n\
         print('RECEIVE', tostring(data), tostring(reason), tostring(code))\n\
         print('AGAIN', select(3, ws:receive()))",
        &[],
    );
    let mut ws = ws_connect(srv.port, None).expect("handshake");
    ws.close(Some(tungstenite::protocol::CloseFrame {
        code: CloseCode::Away,
        reason: "done here".into(),
    }))
    .unwrap();
    srv.expect_line("RECEIVE\tnil\tdone here\t1001");
    srv.expect_line("AGAIN\t32");
}

#[test]
fn the_server_closes_with_its_code_and_reason_and_receive_times_out_first() {
    let srv = server(
        "local ws = assert(http_websocket.new_from_stream(stream, req))\n\
         assert(ws:accept())\n\
         local data, err, errno = ws:receive(0.05)\n\
         print('TIMEOUT', tostring(data), err, errno)\n\
         assert(ws:send_ping('are you there'))\n\
         assert(ws:close(4000, 'bye now'))",
        &[],
    );
    let mut ws = ws_connect(srv.port, None).expect("handshake");
    srv.expect_line("TIMEOUT\tnil\tConnection timed out\t110");
    match ws.read().expect("the ping") {
        Message::Ping(p) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected the ping, got {other:?}"),
    }
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 4000);
                assert_eq!(frame.reason.as_str(), "bye now");
                break;
            }
            Ok(Message::Pong(_)) => continue,
            other => panic!("expected the close frame, got {other:?}"),
        }
    }
}

#[test]
fn a_subprotocol_is_chosen_from_what_the_client_offered() {
    let srv = server(
        "local ws = assert(http_websocket.new_from_stream(stream, req))\n\
         local ok, err = ws:accept { protocols = { 'chat.v2', 'chat.v1' } }\n\
         print('ACCEPT', tostring(ok), tostring(err), tostring(ws.protocol))\n\
         if ok then ws:close() else stream:shutdown() end",
        &[],
    );
    let ws = ws_connect(srv.port, Some("chat.v1, chat.v2")).expect("handshake");
    srv.expect_line("ACCEPT\ttrue\tnil\tchat.v2");
    drop(ws);
    // Nothing in common: accept fails; the stream is answered by the automatic 503.
    let refused = ws_connect(srv.port, Some("other"));
    assert!(refused.is_err(), "handshake should fail");
    srv.expect_line("ACCEPT\tnil\tno matching protocol\tnil");
}

#[test]
fn requests_that_are_not_upgrades_are_refused_by_new_from_stream() {
    let srv = server(
        "local ws, err, errno = http_websocket.new_from_stream(req, stream)\n\
         local res = http_headers.new()\n\
         res:append(':status', '426')\n\
         assert(stream:write_headers(res, false))\n\
         assert(stream:write_chunk(tostring(err) .. ' ' .. tostring(errno), true))",
        &[],
    );
    let resp = get(srv.port, "/");
    assert_eq!(resp.status, 426);
    assert_eq!(resp.text(), "upgrade header not websocket 22");
    let mut s = connect(srv.port);
    s.write_all(
        b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let resp = read_response(&mut s, false).expect("a response");
    assert_eq!(
        resp.text(),
        "upgrade headers MUST be ignored in HTTP 1.0 22"
    );
}

#[test]
fn a_message_over_the_limit_closes_with_1009_and_the_server_goes_on() {
    let srv = server(ECHO, &["--ws-max-message", "1000"]);
    let mut ws = ws_connect(srv.port, None).expect("handshake");
    ws.send(Message::text("y".repeat(5000))).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 1009);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("expected a close frame: {e}"),
        }
        assert!(Instant::now() < deadline);
    }
    let mut again = ws_connect(srv.port, None).expect("a second client");
    again.send(Message::text("small")).unwrap();
    assert_eq!(next_message(&mut again), Message::text("small"));
}

#[test]
fn many_clients_echo_at_once_each_in_its_own_coroutine() {
    let srv = server(ECHO, &[]);
    let port = srv.port;
    let threads: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                let mut ws = ws_connect(port, None).expect("handshake");
                for n in 0..50 {
                    let text = format!("client {i} message {n}");
                    ws.send(Message::text(text.clone())).unwrap();
                    assert_eq!(next_message(&mut ws), Message::text(text));
                }
                ws.close(None).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn http_request_calls_out_from_a_handler_without_blocking_other_streams() {
    let srv = server(
        "if req:get(':path') == '/slow' then\n\
           cqueues.sleep(0.2)\n\
           local res = http_headers.new() res:append(':status', '201')\n\
           res:append('x-inner', 'yes')\n\
           assert(stream:write_headers(res, false))\n\
           assert(stream:write_chunk('inner body', true))\n\
           return\n\
         end\n\
         local port = select(3, stream:localname())\n\
         local request = require('http.request').new_from_uri('http://127.0.0.1:' .. port .. '/slow')\n\
         request.headers:upsert(':method', 'POST')\n\
         request:set_body('sent along')\n\
         local headers, body_stream = assert(request:go(10))\n\
         local res = http_headers.new() res:append(':status', '200')\n\
         assert(stream:write_headers(res, false))\n\
         assert(stream:write_chunk(headers:get(':status') .. ' ' .. tostring(headers:get('x-inner'))\n\
           .. ' ' .. body_stream:get_body_as_string(), true))",
        &[],
    );
    let resp = get(srv.port, "/outer");
    assert_eq!(resp.text(), "201 yes inner body");
    let refused = Server::start(
        "local http_request = require 'http.request'\n\
         print('LISTENING 0')\n\
         local h, err, errno = http_request.new_from_uri('http://127.0.0.1:1/'):go(5)\n\
         print('GO', tostring(h), err ~= nil, errno)\n\
         print('HTTPS', select(2, http_request.new_from_uri('https://127.0.0.1:1/'):go(5)))",
        &[],
    );
    refused.expect_line("GO\tnil\ttrue\t111");
    // https:// goes through the same client: refused by the port, as plain http:// is (or by a
    // build without TLS).
    let https = refused
        .line_starting("HTTPS\t", common::WAIT)
        .expect("the HTTPS line");
    if cfg!(feature = "tls") {
        assert!(https.ends_with("\t111"), "{https}");
    } else {
        assert!(https.contains("not in this build"), "{https}");
    }
}
