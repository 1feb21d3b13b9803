//! WebSocket echo round trips: ccserve running `examples/ws_echo.lua` against an in-process
//! baseline (a raw tungstenite echo server: one thread per client that echoes each message
//! itself, no Lua), with the same compiled tungstenite client (TCP_NODELAY) for both.
//!
//! Two workloads on each server, in every round (the order of the servers alternates by round):
//! - **sequential**: 1 client sends 10,000 32-byte text messages one at a time (after 200 warm-up
//!   messages), waiting for each echo; every round trip is timed.
//! - **concurrent**: 50 clients, connected first, start together (a barrier) and each send 1,000
//!   messages one at a time; every round trip and each client's finish time is recorded.
//!
//! Reported: messages/s, round-trip p50/p99 (µs), the ratio ccserve / baseline, and for the
//! concurrent workload each client's finish time (min / median / max) and whether the slowest
//! client took at most twice the median ("no client starved"). Every socket has a read timeout,
//! so a server that stops answering fails the bench instead of hanging it.
//!
//! Run: `cargo bench --bench ws` (or `bash bench/run.sh`). Knob: `CCSERVE_BENCH_ROUNDS`
//! (default 3). Results: stdout and `target/bench-results/ws.md`.

mod common;

use common::baseline::TungsteniteEcho as Baseline;
use common::ws_client::{
    concurrent, median_run, sequential, Run, CLIENTS, CLIENT_MESSAGES, SEQUENTIAL_MESSAGES,
};
use common::{median, quantile, thousands, Ccserve};
use std::fmt::Write as _;
use std::time::Duration;

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn main() {
    let rounds = common::rounds();
    let machine = common::machine();
    let baseline = Baseline::start();
    let ccserve = Ccserve::start("examples/ws_echo.lua");
    let ports = [baseline.port, ccserve.port];
    let names = ["baseline", "ccserve"];

    // runs[workload 0 = sequential, 1 = concurrent][server 0 = baseline, 1 = ccserve]
    let mut runs: [[Vec<Run>; 2]; 2] = Default::default();
    for round in 0..rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let seq = sequential(ports[which]);
            let con = concurrent(ports[which]);
            eprintln!(
                "round {}/{rounds} {:8}: sequential {:>7} msg/s p50 {} µs p99 {} µs | concurrent {:>7} msg/s p50 {} µs p99 {} µs, finish {}..{} ms",
                round + 1,
                names[which],
                thousands(seq.messages_per_sec),
                us(seq.p50),
                us(seq.p99),
                thousands(con.messages_per_sec),
                us(con.p50),
                us(con.p99),
                ms(con.finish[0]),
                ms(*con.finish.last().expect("clients")),
            );
            runs[0][which].push(seq);
            runs[1][which].push(con);
        }
    }
    drop(ccserve);
    drop(baseline);

    let mut md = String::new();
    let _ = writeln!(md, "### WebSocket echo: ccserve vs raw tungstenite\n");
    let _ = writeln!(
        md,
        "32-byte text messages, each sent after the previous echo arrived; Rust tungstenite client \
         with TCP_NODELAY. {rounds} rounds (both servers each round, alternating which goes \
         first); medians over rounds. Machine: {machine}. {}.\n",
        common::binary()
    );
    let _ = writeln!(
        md,
        "| workload | server | msgs/s | ccserve / baseline | round trip p50 µs | p99 µs |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    let workloads = [
        format!("1 client × {}", thousands(SEQUENTIAL_MESSAGES as f64)),
        format!(
            "{CLIENTS} clients × {} concurrently",
            thousands(CLIENT_MESSAGES as f64)
        ),
    ];
    for (w, workload) in workloads.iter().enumerate() {
        let rate = |v: &[Run]| median(&v.iter().map(|r| r.messages_per_sec).collect::<Vec<_>>());
        let lat = |v: &[Run], f: fn(&Run) -> Duration| {
            Duration::from_secs_f64(median(
                &v.iter().map(|r| f(r).as_secs_f64()).collect::<Vec<_>>(),
            ))
        };
        let base_rate = rate(&runs[w][0]);
        for (s, name) in ["raw tungstenite (baseline)", "ccserve ws_echo.lua"]
            .iter()
            .enumerate()
        {
            let v = &runs[w][s];
            let ratio = if s == 0 {
                "–".to_string()
            } else {
                format!("{:.2}", rate(v) / base_rate)
            };
            let _ = writeln!(
                md,
                "| {workload} | {name} | {} | {ratio} | {} | {} |",
                thousands(rate(v)),
                us(lat(v, |r| r.p50)),
                us(lat(v, |r| r.p99)),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nConcurrent workload, each client's finish time (round with the median msgs/s):\n"
    );
    let _ = writeln!(
        md,
        "| server | min ms | median ms | max ms | max ≤ 2 × median (no client starved) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for (s, name) in ["raw tungstenite (baseline)", "ccserve ws_echo.lua"]
        .iter()
        .enumerate()
    {
        let v = &runs[1][s];
        let r = median_run(v);
        let ok = v.iter().filter(|r| !r.starved()).count();
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} ({ok} of {} rounds) |",
            ms(r.finish[0]),
            ms(quantile(&r.finish, 0.5)),
            ms(*r.finish.last().expect("clients")),
            if ok == v.len() { "yes" } else { "NO" },
            v.len(),
        );
    }
    let _ = writeln!(
        md,
        "\nBaseline: tungstenite 0.30 `accept` in this process, one thread per client that reads a \
         message and sends it back itself (no Lua, no event queue). ccserve: one reader and one \
         writer thread per client, every message goes through the Lua script's event loop."
    );
    common::publish("ws", &md);
}
