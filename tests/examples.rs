//! The examples in `examples/` work as README says: each is started with the real binary on an
//! OS-chosen port (port 0; the port is read from the `-v` log line) and exercised with a real
//! HTTP client.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::{connect, read_response, Server, WAIT};

/// Starts `examples/NAME` with port argument 0 and waits for its listener to be bound.
fn start(name: &str) -> Server {
    start_with(name, &[])
}

/// [`start`] with extra options before the script.
fn start_with(name: &str, options: &[&str]) -> Server {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["-v", "--bind", "127.0.0.1"];
    args.extend_from_slice(options);
    args.extend_from_slice(&[&path, "0"]);
    let mut ex = Server::spawn_exact(&args);
    ex.port = ex
        .stderr_line_containing("listening on ", WAIT)
        .and_then(|line| {
            let rest = line.split("://").nth(1)?;
            rest.rsplit(':').next().and_then(|p| p.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("{name} did not start listening"));
    ex
}

fn request(port: u16, raw: &str) -> common::Response {
    let mut s = connect(port);
    s.write_all(raw.as_bytes()).unwrap();
    read_response(&mut s, false).expect("response")
}

#[test]
fn hello_example_says_hello() {
    let ex = start("hello.lua");
    let r = request(ex.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, world!\n");
    assert_eq!(r.header("content-type"), Some("text/plain"));
}

#[test]
fn readme_shows_the_hello_example_as_it_is() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{dir}/README.md")).unwrap();
    let file = std::fs::read_to_string(format!("{dir}/examples/hello.lua")).unwrap();
    let start = readme
        .find("```lua\n-- examples/hello.lua\n")
        .expect("README has a snippet headed -- examples/hello.lua")
        + "```lua\n-- examples/hello.lua\n".len();
    let len = readme[start..].find("```").expect("the snippet ends");
    assert_eq!(
        &readme[start..start + len],
        file,
        "README's hello snippet is not examples/hello.lua"
    );
}

#[test]
fn routing_example_routes_by_method_and_path() {
    let ex = start("routing.lua");
    let r = request(
        ex.port,
        "POST /notes HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst",
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.text(), "stored note 1\n");
    let r = request(ex.port, "GET /notes HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.text(), "1: first\n");
    let r = request(ex.port, "DELETE /notes HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 405);
    let r = request(ex.port, "GET /nowhere?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "not found: /nowhere\n");
    let r = request(ex.port, "GET /time HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.text().starts_with("Server time (UTC): "), "{}", r.text());
}

#[test]
fn echo_example_echoes_the_body() {
    let ex = start("echo.lua");
    let body = "bytes\0and\r\nlines";
    let raw = format!(
        "POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: text/odd\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = request(ex.port, &raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), body);
    assert_eq!(r.header("content-type"), Some("text/odd"));
    assert_eq!(
        r.header("x-body-length"),
        Some(body.len().to_string().as_str())
    );
    let r = request(ex.port, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[test]
fn embed_example_runs_to_completion() {
    // The library example is built by `cargo test`; run it as a user would.
    let exe = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        })
        .join("examples")
        .join("embed");
    if !exe.exists() {
        // A different target dir (CARGO_TARGET_DIR): find it next to the test binary.
        let here = std::env::current_exe().unwrap();
        let alt = here
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples")
            .join("embed");
        assert!(alt.exists(), "embed example not built at {}", alt.display());
        return check_embed(&alt);
    }
    check_embed(&exe);
}

fn check_embed(exe: &std::path::Path) {
    let out = Command::new(exe).output().expect("run embed example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tick 3"), "{stdout}");
    assert!(
        stdout.contains("hello from the embed example, you asked for /embedded"),
        "{stdout}"
    );
}

/// A WebSocket client connected to 127.0.0.1:`port`.
fn ws_connect(port: u16) -> tungstenite::WebSocket<std::net::TcpStream> {
    let stream = connect(port);
    let (ws, _) = tungstenite::client::client(format!("ws://127.0.0.1:{port}/"), stream)
        .expect("websocket handshake");
    ws
}

/// The next text message; anything else fails the test with what the example wrote to stderr.
fn ws_text(ex: &Server, ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> String {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => return t.to_string(),
            Ok(tungstenite::Message::Ping(_)) | Ok(tungstenite::Message::Pong(_)) => continue,
            other => {
                // If the example failed, its error follows the close by a moment: wait for it.
                let _ = ex.stderr_line_containing("rror", Duration::from_secs(5));
                panic!(
                    "unexpected {other:?}; the example's stderr:\n{}",
                    ex.stderr()
                )
            }
        }
    }
}

#[test]
fn ws_echo_example_echoes_text_and_binary() {
    let ex = start("ws_echo.lua");
    let mut ws = ws_connect(ex.port);
    ws.send(tungstenite::Message::text("hello")).unwrap();
    assert_eq!(ws_text(&ex, &mut ws), "hello");
    ws.send(tungstenite::Message::binary(vec![0u8, 1, 2, 255]))
        .unwrap();
    match ws.read().expect("binary echo") {
        tungstenite::Message::Binary(b) => assert_eq!(&b[..], &[0u8, 1, 2, 255]),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn ws_chat_example_broadcasts_to_every_client() {
    let ex = start("ws_chat.lua");
    let mut a = ws_connect(ex.port);
    assert_eq!(ws_text(&ex, &mut a), "user1 joined");
    let mut b = ws_connect(ex.port);
    assert_eq!(ws_text(&ex, &mut a), "user2 joined");
    assert_eq!(ws_text(&ex, &mut b), "user2 joined");
    b.send(tungstenite::Message::text("hi all")).unwrap();
    assert_eq!(ws_text(&ex, &mut a), "user2: hi all");
    assert_eq!(ws_text(&ex, &mut b), "user2: hi all");
    b.close(None).unwrap();
    assert_eq!(ws_text(&ex, &mut a), "user2 left");
}

#[test]
fn webify_style_example_serves_a_json_api_with_routing() {
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("webify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let ex = start_with("webify_style.lua", &["--root", root.to_str().unwrap()]);
    let r = request(ex.port, "GET /api/items HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    let body = r#"{"name":"apple","qty":3}"#;
    let post = format!(
        "POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = request(ex.port, &post);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.text().contains(r#""name":"apple""#), "{}", r.text());
    assert!(r.text().contains(r#""id":1"#), "{}", r.text());
    let r = request(ex.port, "GET /api/items/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.text().contains(r#""qty":3"#), "{}", r.text());
    // Kept in a file under the root.
    let saved = std::fs::read_to_string(root.join("items.json")).expect("items.json written");
    assert!(saved.contains("apple"), "{saved}");
    let r = request(ex.port, "PUT /api/items/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 405);
    let r = request(
        ex.port,
        "POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{x}",
    );
    assert_eq!(r.status, 400);
    let r = request(ex.port, "DELETE /api/items/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    let r = request(ex.port, "GET /api/items/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 404);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn luahttp_hello_example_says_hello_and_heads_carry_no_body() {
    let ex = start("luahttp_hello.lua");
    let r = request(ex.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, world!\n");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let mut s = connect(ex.port);
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_response(&mut s, true).expect("HEAD response");
    assert_eq!(head.status, 200);
    let after = read_response(&mut s, false).expect("the pipelined GET");
    assert_eq!(after.text(), "Hello, world!\n");
}

#[test]
fn luahttp_sse_example_streams_ticks_while_serving_others() {
    let path = format!("{}/examples/luahttp_sse.lua", env!("CARGO_MANIFEST_DIR"));
    // Port 0, and 0.05 s between ticks.
    let mut ex = Server::spawn_exact(&["-v", "--bind", "127.0.0.1", &path, "0", "0.05"]);
    ex.port = ex
        .stderr_line_containing("listening on ", WAIT)
        .and_then(|line| line.rsplit(':').next()?.trim().parse().ok())
        .expect("listening");
    let mut events = connect(ex.port);
    events
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let mut served_other = false;
    while !String::from_utf8_lossy(&got).contains("data: tick 3 ") {
        let n = std::io::Read::read(&mut events, &mut buf).expect("event bytes");
        assert!(n > 0, "stream ended");
        got.extend_from_slice(&buf[..n]);
        // Another client is served while the stream goes on.
        if !served_other && String::from_utf8_lossy(&got).contains("data: tick 1 ") {
            let page = request(ex.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert!(page.text().contains("EventSource"), "{}", page.text());
            served_other = true;
        }
    }
    assert!(served_other);
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    assert!(text.contains("Transfer-Encoding: chunked"), "{text}");
}

#[test]
fn luahttp_ws_echo_example_echoes_and_refuses_plain_requests() {
    let ex = start("luahttp_ws_echo.lua");
    let mut ws = ws_connect(ex.port);
    ws.send(tungstenite::Message::text("over lua-http"))
        .unwrap();
    assert_eq!(ws_text(&ex, &mut ws), "over lua-http");
    let r = request(ex.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 426);
}

#[test]
fn nodemcu_hello_example_says_hello() {
    let ex = start_with("nodemcu_hello.lua", &["--nodemcu"]);
    let r = request(ex.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.text(), "Hello, world!\n");
    assert_eq!(r.header("content-type"), Some("text/plain"));
}

#[test]
fn nodemcu_fan_example_serves_state_and_keeps_its_threshold() {
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fan-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let root_arg = root.to_string_lossy().into_owned();
    let ex = start_with("nodemcu_fan.lua", &["--nodemcu", "--root", &root_arg]);
    let page = request(ex.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(page.header("content-type"), Some("text/html"));
    assert!(page.text().contains("Set threshold"));
    let state = request(ex.port, "GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n").text();
    assert!(state.contains("\"threshold\":28"), "{state}");
    assert!(state.contains("\"fan\":false"), "{state}");
    let body = r#"{"threshold": -5}"#;
    let set = request(
        ex.port,
        &format!(
            "POST /api/threshold HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(set.status, 200);
    // 0 °C is above -5 °C: the fan is on now, and the threshold is in the file.
    assert!(set.text().contains("\"fan\":true"), "{}", set.text());
    let saved = std::fs::read_to_string(root.join("fan.json")).unwrap();
    assert!(saved.contains("\"threshold\":-5"), "{saved}");
    let bad = request(
        ex.port,
        "POST /api/threshold HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{x}",
    );
    assert_eq!(bad.status, 400);
    drop(ex);
    // Started again, it reads its threshold back.
    let ex = start_with("nodemcu_fan.lua", &["--nodemcu", "--root", &root_arg]);
    let state = request(ex.port, "GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n").text();
    assert!(state.contains("\"threshold\":-5"), "{state}");
    let missing = request(ex.port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(missing.status_line, "HTTP/1.1 404 Not Found");
}
