//! The compiled WebSocket echo client of the benches (tungstenite, TCP_NODELAY, read timeouts
//! from [`super::connect`]) and its two workloads, shared by `benches/ws.rs` and
//! `benches/luahttp.rs`:
//! - [`sequential`]: 1 client sends [`SEQUENTIAL_MESSAGES`] 32-byte text messages one at a time
//!   (after [`WARMUP`] warm-up messages), waiting for each echo; every round trip is timed.
//! - [`concurrent`]: [`CLIENTS`] clients, connected and warmed up first, start together (a
//!   barrier) and each send [`CLIENT_MESSAGES`] messages one at a time; every round trip and each
//!   client's finish time is recorded.

use super::quantile;
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

pub const PAYLOAD: &str = "0123456789abcdef0123456789abcdef"; // 32 bytes
pub const WARMUP: usize = 200;
pub const SEQUENTIAL_MESSAGES: usize = 10_000;
pub const CLIENTS: usize = 50;
pub const CLIENT_MESSAGES: usize = 1_000;
/// Warm-up messages per client in the concurrent workload (before the barrier).
pub const CLIENT_WARMUP: usize = 10;

pub fn ws_connect(port: u16) -> WebSocket<TcpStream> {
    let stream = super::connect(port);
    let (ws, _) = tungstenite::client::client(format!("ws://127.0.0.1:{port}/"), stream)
        .unwrap_or_else(|e| panic!("websocket handshake with 127.0.0.1:{port}: {e}"));
    ws
}

/// Sends one message and waits for its echo; returns the round-trip time.
pub fn round_trip(ws: &mut WebSocket<TcpStream>) -> Duration {
    let start = Instant::now();
    ws.send(Message::text(PAYLOAD))
        .expect("send a message (server gone?)");
    loop {
        match ws
            .read()
            .expect("read the echo (server gone, or no echo within the timeout)")
        {
            Message::Text(text) => {
                let elapsed = start.elapsed();
                assert_eq!(text.as_str(), PAYLOAD, "wrong echo");
                return elapsed;
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message instead of the echo: {other:?}"),
        }
    }
}

pub fn close(mut ws: WebSocket<TcpStream>) {
    let _ = ws.close(None);
    let _ = ws.flush();
}

/// Results of one workload on one server.
#[derive(Clone, Debug)]
pub struct Run {
    pub messages_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Concurrent workload only: each client's finish time since the common start, sorted.
    pub finish: Vec<Duration>,
}

impl Run {
    pub fn new(mut rtts: Vec<Duration>, elapsed: Duration, finish: Vec<Duration>) -> Run {
        rtts.sort_unstable();
        Run {
            messages_per_sec: rtts.len() as f64 / elapsed.as_secs_f64(),
            p50: quantile(&rtts, 0.50),
            p99: quantile(&rtts, 0.99),
            finish,
        }
    }

    pub fn starved(&self) -> bool {
        let max = self.finish.last().copied().unwrap_or_default();
        max > 2 * quantile(&self.finish, 0.5)
    }
}

pub fn sequential(port: u16) -> Run {
    let mut ws = ws_connect(port);
    for _ in 0..WARMUP {
        round_trip(&mut ws);
    }
    let mut rtts = Vec::with_capacity(SEQUENTIAL_MESSAGES);
    let start = Instant::now();
    for _ in 0..SEQUENTIAL_MESSAGES {
        rtts.push(round_trip(&mut ws));
    }
    let elapsed = start.elapsed();
    close(ws);
    Run::new(rtts, elapsed, Vec::new())
}

pub fn concurrent(port: u16) -> Run {
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<JoinHandle<(Vec<Duration>, Instant)>> = (0..CLIENTS)
        .map(|_| {
            let barrier = barrier.clone();
            // Connect and warm up here, so a failure panics before anyone waits on the barrier.
            let mut ws = ws_connect(port);
            for _ in 0..CLIENT_WARMUP {
                round_trip(&mut ws);
            }
            std::thread::spawn(move || {
                barrier.wait();
                let rtts: Vec<Duration> =
                    (0..CLIENT_MESSAGES).map(|_| round_trip(&mut ws)).collect();
                let finished = Instant::now();
                close(ws);
                (rtts, finished)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut rtts = Vec::with_capacity(CLIENTS * CLIENT_MESSAGES);
    let mut finish = Vec::with_capacity(CLIENTS);
    for client in clients {
        let (client_rtts, finished) = client
            .join()
            .expect("a client thread failed (see its panic message above)");
        rtts.extend(client_rtts);
        finish.push(finished.saturating_duration_since(start));
    }
    finish.sort_unstable();
    let elapsed = *finish.last().expect("at least one client");
    Run::new(rtts, elapsed, finish)
}

/// The run with the median messages/s (the lower middle for an even count).
pub fn median_run(runs: &[Run]) -> &Run {
    let mut sorted: Vec<&Run> = runs.iter().collect();
    sorted.sort_by(|a, b| a.messages_per_sec.total_cmp(&b.messages_per_sec));
    sorted[(sorted.len() - 1) / 2]
}

/// Min / median / max client finish time (ms) of the run with the median msgs/s among `runs`;
/// empty for a sequential workload (no finish times).
pub fn finish_times<'a>(runs: impl Iterator<Item = &'a Run>) -> String {
    let mut sorted: Vec<&Run> = runs.collect();
    if sorted.is_empty() {
        return String::new();
    }
    sorted.sort_by(|a, b| a.messages_per_sec.total_cmp(&b.messages_per_sec));
    let finish = &sorted[(sorted.len() - 1) / 2].finish;
    match (finish.first(), finish.last()) {
        (Some(&min), Some(&max)) => format!(
            "{:.0} / {:.0} / {:.0}",
            min.as_secs_f64() * 1e3,
            quantile(finish, 0.5).as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        ),
        _ => String::new(),
    }
}
