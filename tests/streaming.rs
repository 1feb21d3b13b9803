//! Streamed responses through CraftOS's API extended with `res.flush()`, against the real binary
//! over real TCP: parts reach the client as they are flushed, memory stays bounded whatever the
//! client's pace, and framing, pipelining, HTTP/1.0, `HEAD`, `204`/`304`, vanishing clients and
//! the response timeout behave as README says.
//!
//! Nothing sleeps to synchronise: the tests wait on bytes, lines of output, or closed sockets.

mod common;

use common::{connect, get, read_to_close, read_until, rss_kib_of, Server, WAIT};
use std::io::{Read, Write};

/// Bytes of the large transfer: 1 GiB unless `CCSERVE_STREAM_TEST_MIB` says otherwise
/// (`scripts/cross-test.sh` lowers it under qemu).
fn transfer_mib() -> u64 {
    std::env::var("CCSERVE_STREAM_TEST_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// A script answering `/stream` with `one`, a flush, then (once `/next` arrives) `two`.
const TWO_PARTS: &str = r#"
local port = http.addListener(0)
print("LISTENING " .. port)
local streaming
while true do
    local _, _, req, res = os.pullEvent("http_request")
    local url = req.getURL()
    if url == "/stream" then
        res.setResponseHeader("Content-Type", "text/plain")
        res.write("one")
        print("FLUSH " .. tostring(res.flush()))
        streaming = res
    elseif url == "/next" then
        streaming.write("two")
        streaming.close()
        res.write("sent")
        res.close()
    else
        res.write("plain " .. url)
        res.close()
    end
end
"#;

#[test]
fn a_flushed_part_reaches_the_client_before_the_next_is_written() {
    let server = Server::start(TWO_PARTS, &[]);
    let mut client = connect(server.port);
    client
        .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let first = String::from_utf8_lossy(&read_until(&mut client, b"3\r\none\r\n")).into_owned();
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first.contains("Transfer-Encoding: chunked\r\n"), "{first}");
    assert!(first.contains("Content-Type: text/plain\r\n"), "{first}");
    assert!(!first.contains("Content-Length"), "{first}");
    server.expect_line("FLUSH true");
    // The second part is written only now, by another request.
    assert_eq!(get(server.port, "/next").text(), "sent");
    read_until(&mut client, b"3\r\ntwo\r\n0\r\n\r\n");
    // The connection carries another request.
    client
        .write_all(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_until(&mut client, b"plain /after");
}

#[test]
fn pipelined_requests_are_answered_in_order_around_a_streamed_response() {
    let server = Server::start(TWO_PARTS, &[]);
    let mut client = connect(server.port);
    client
        .write_all(
            b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
    read_until(&mut client, b"3\r\none\r\n");
    assert_eq!(get(server.port, "/next").text(), "sent");
    let rest = String::from_utf8_lossy(&read_until(&mut client, b"plain /second")).into_owned();
    let end = rest
        .find("0\r\n\r\n")
        .expect("the streamed response ends first");
    assert!(
        rest.find("HTTP/1.1 200").is_some_and(|second| second > end),
        "{rest}"
    );
}

#[test]
fn http_1_0_streams_are_delimited_by_closing_the_connection() {
    let server = Server::start(TWO_PARTS, &[]);
    let mut client = connect(server.port);
    client.write_all(b"GET /stream HTTP/1.0\r\n\r\n").unwrap();
    let first = String::from_utf8_lossy(&read_until(&mut client, b"one")).into_owned();
    assert!(first.starts_with("HTTP/1.0 200 OK\r\n"), "{first}");
    assert!(first.contains("Connection: close\r\n"), "{first}");
    assert!(!first.contains("Transfer-Encoding"), "{first}");
    assert!(!first.contains("Content-Length"), "{first}");
    assert!(first.ends_with("\r\n\r\none"), "{first}");
    assert_eq!(get(server.port, "/next").text(), "sent");
    assert_eq!(read_to_close(&mut client), b"two");
}

#[test]
fn head_204_and_304_send_no_body_even_when_flushed() {
    let server = Server::start(
        &common::listen_script(
            "local url = req.getURL()\n\
             if url == '/204' then res.setStatusCode(204) end\n\
             if url == '/304' then res.setStatusCode(304) end\n\
             res.write('body that must not be sent')\n\
             res.flush()\n\
             res.write('and more')\n\
             res.close()",
        ),
        &[],
    );
    let mut client = connect(server.port);
    client
        .write_all(
            b"HEAD /head HTTP/1.1\r\nHost: x\r\n\r\nGET /204 HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /304 HTTP/1.1\r\nHost: x\r\n\r\nGET /last HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
    let all =
        String::from_utf8_lossy(&read_until(&mut client, b"and more\r\n0\r\n\r\n")).into_owned();
    let statuses: Vec<&str> = all
        .split("\r\n")
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 204 No Content",
            "HTTP/1.1 304 Not Modified",
            "HTTP/1.1 200 OK"
        ],
        "{all}"
    );
    // Only the last (a GET) carries the body.
    assert_eq!(
        all.matches("body that must not be sent").count(),
        1,
        "{all}"
    );
}

#[test]
fn server_sent_events_flushed_one_by_one_arrive_as_chunks_of_their_own() {
    let server = Server::start(
        &common::listen_script(
            "res.setResponseHeader('Content-Type', 'text/event-stream')\n\
             res.setResponseHeader('Cache-Control', 'no-cache')\n\
             for i = 1, 3 do\n\
               res.write('data: tick ' .. i .. '\\n\\n')\n\
               res.flush()\n\
               sleep(0.01)\n\
             end\n\
             res.close()",
        ),
        &[],
    );
    let mut client = connect(server.port);
    client
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let all = String::from_utf8_lossy(&read_until(&mut client, b"\r\n0\r\n\r\n")).into_owned();
    assert!(all.contains("Content-Type: text/event-stream\r\n"), "{all}");
    assert!(all.contains("Transfer-Encoding: chunked\r\n"), "{all}");
    let body = &all[all.find("\r\n\r\n").unwrap() + 4..];
    // Each event is one chunk: "e\r\ndata: tick N\n\n\r\n".
    assert_eq!(
        body,
        "e\r\ndata: tick 1\n\n\r\ne\r\ndata: tick 2\n\n\r\ne\r\ndata: tick 3\n\n\r\n0\r\n\r\n"
    );
}

/// Streams `MIB` MiB in 64 KiB parts with `res.flush()` after each.
const BIG_STREAM: &str = r#"
local mib = tonumber((...))
local port = http.addListener(0)
print("LISTENING " .. port)
local piece = string.rep("x", 64 * 1024)
while true do
    local _, _, req, res = os.pullEvent("http_request")
    for i = 1, mib * 16 do
        res.write(piece)
        if not res.flush() then break end
    end
    res.close()
    print("STREAMED")
end
"#;

#[test]
fn a_large_flushed_response_keeps_the_servers_memory_flat() {
    let mib = transfer_mib();
    let mut server = Server::spawn(BIG_STREAM, &[], &[&mib.to_string()]);
    let line = server.line_starting("LISTENING ", WAIT).expect("listening");
    server.port = line["LISTENING ".len()..].trim().parse().unwrap();
    let mut client = connect(server.port);
    // One small request first, so the idle figure includes a served connection.
    let idle = rss_kib_of(server.pid());
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    let mut peak = idle;
    let mut tail = Vec::new();
    loop {
        let n = client.read(&mut buf).expect("body bytes");
        assert!(n > 0, "closed after {received} bytes");
        received += n as u64;
        if received % (32 << 20) < n as u64 {
            peak = peak.max(rss_kib_of(server.pid()));
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 16 {
            tail.drain(..tail.len() - 16);
        }
        if tail.ends_with(b"\r\n0\r\n\r\n") {
            break;
        }
    }
    server.expect_line("STREAMED");
    // Chunked framing adds 10 bytes per 64 KiB part ("10000\r\n" and "\r\n") plus the head.
    assert!(received >= mib << 20, "received {received} bytes");
    println!("streamed {mib} MiB; server RSS {idle} KiB idle, peak {peak} KiB");
    if common::under_emulator(server.pid()) {
        return; // qemu-user's translation buffers: RSS is the emulator's, not the server's
    }
    assert!(
        peak < idle + 8 * 1024,
        "server RSS grew from {idle} to {peak} KiB while streaming"
    );
}

#[test]
fn a_client_that_reads_nothing_holds_only_the_stream_buffer_and_others_are_served() {
    let server = Server::start(
        r#"
local slow, fast = http.addListener(0), http.addListener(0)
print("LISTENING " .. fast)
print("SLOW " .. slow)
local piece = string.rep("y", 64 * 1024)
parallel.waitForAll(function()
    while true do
        local _, port, req, res = os.pullEvent("http_request")
        if port == slow then
            local sent = 0
            while res.flush() do
                res.write(piece)
                sent = sent + 1
                if sent == 4 then print("STREAMING") end
            end
            print("CLIENT GONE after " .. sent .. " parts")
            res.close()
        end
    end
end, function()
    while true do
        local _, port, req, res = os.pullEvent("http_request")
        if port == fast then res.write("fast " .. req.getURL()) res.close() end
    end
end)
"#,
        &[],
    );
    let slow_port: u16 = server.line_starting("SLOW ", WAIT).expect("slow port")["SLOW ".len()..]
        .parse()
        .unwrap();
    let mut slow = connect(slow_port);
    slow.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    server.expect_line("STREAMING");
    let idle = rss_kib_of(server.pid());
    // The streaming routine waits for room; the other keeps answering.
    for i in 0..20 {
        assert_eq!(
            get(server.port, &format!("/{i}")).text(),
            format!("fast /{i}")
        );
    }
    let held = rss_kib_of(server.pid());
    println!("server RSS {idle} KiB when the stream stalled, {held} KiB after 20 other requests");
    assert!(
        common::under_emulator(server.pid()) || held < idle + 4 * 1024,
        "server RSS grew from {idle} to {held} KiB with a stalled client"
    );
    // The client vanishes: the next flush reports it.
    drop(slow);
    let gone = server
        .line_starting("CLIENT GONE", WAIT)
        .expect("flush reported the vanished client");
    println!("{gone}");
    assert_eq!(get(server.port, "/after").text(), "fast /after");
}

#[test]
fn a_stream_left_idle_for_the_response_timeout_is_ended_and_its_handle_closed() {
    let server = Server::start(
        r#"
local port = http.addListener(0)
print("LISTENING " .. port)
local _, _, req, res = os.pullEvent("http_request")
res.write("started")
res.flush()
local _, _, req2, res2 = os.pullEvent("http_request")
print("WRITE " .. tostring(pcall(res.write, "late")))
res2.close()
os.pullEvent("never")
"#,
        &["--response-timeout", "1"],
    );
    let mut client = connect(server.port);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Ended properly after the timeout: the client gets a complete chunked body.
    let all = String::from_utf8_lossy(&read_until(&mut client, b"\r\n0\r\n\r\n")).into_owned();
    assert!(all.ends_with("7\r\nstarted\r\n0\r\n\r\n"), "{all}");
    assert_eq!(get(server.port, "/second").status, 200);
    server.expect_line("WRITE false");
}

#[test]
fn a_stream_whose_handles_are_dropped_is_cut_off() {
    let server = Server::start(
        r#"
local port = http.addListener(0)
print("LISTENING " .. port)
while true do
    local _, _, req, res = os.pullEvent("http_request")
    res.write("partial")
    res.flush()
end
"#,
        &["--response-timeout", "60"],
    );
    let mut client = connect(server.port);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The handles are collected once the loop waits again: the connection closes without the
    // chunked terminator, so the client sees the response incomplete.
    let all = String::from_utf8_lossy(&read_to_close(&mut client)).into_owned();
    assert!(all.ends_with("7\r\npartial\r\n"), "{all}");
}

#[test]
fn flushing_with_the_colon_form_and_after_close() {
    let server = Server::start(
        &common::listen_script(
            "res:write('a')\n\
             local ok = res:flush()\n\
             res:close()\n\
             print('FLUSHED ' .. tostring(ok) .. ' ' .. tostring(pcall(res.flush)))",
        ),
        &[],
    );
    let resp = get(server.port, "/");
    assert_eq!(resp.text(), "a");
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    server.expect_line("FLUSHED true false");
}
