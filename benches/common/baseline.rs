//! The in-process baselines of the benches (no Lua), shared by `benches/http.rs`, `benches/ws.rs`
//! and `benches/peers.rs`:
//! - [`TinyHttp`]: tiny_http 0.12's stock README hello world: `Server::http`, one thread looping
//!   over `incoming_requests()` and answering `200 Hello, world!\n` with
//!   `Content-Type: text/plain` (the bytes `examples/hello.lua` sends).
//! - [`TungsteniteEcho`]: a raw tungstenite 0.30 echo server, one thread per client that reads a
//!   message and sends it back itself.
//!
//! Both run on threads of this process whose names (`comm`, inherited by the threads they
//! spawn) start with [`TinyHttp::THREADS`] / [`TungsteniteEcho::THREADS`], so their CPU time can
//! be told apart from the bench's own threads (the wrk sampler, the WebSocket clients):
//! [`TinyHttp::cpu_seconds`] and [`TungsteniteEcho::cpu_seconds`].

use super::{this_thread_cpu_seconds, threads_cpu, ThreadsCpu, WAIT};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::Message;

const BODY: &[u8] = b"Hello, world!\n";

/// The stock tiny_http hello world, on threads of this process.
pub struct TinyHttp {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    pub port: u16,
}

impl TinyHttp {
    /// Name prefix of every thread of this baseline: tiny_http's accept thread and its pool of
    /// connection threads (created by a thread of this name, whose name they inherit) and the
    /// recv thread.
    pub const THREADS: &'static str = "tinyhttp-";

    pub fn start() -> TinyHttp {
        // tiny_http's threads are unnamed, so they carry the name of the thread that created
        // them (Linux copies `comm` on clone): create the server on a named thread.
        let server = std::thread::Builder::new()
            .name("tinyhttp-base".into())
            .spawn(|| tiny_http::Server::http("127.0.0.1:0"))
            .expect("spawn the thread creating the tiny_http baseline")
            .join()
            .expect("creating the tiny_http baseline panicked")
            .unwrap_or_else(|e| panic!("start the tiny_http baseline: {e}"));
        let server = Arc::new(server);
        let port = server
            .server_addr()
            .to_ip()
            .expect("the baseline listens on an IP address")
            .port();
        let recv = server.clone();
        let thread = std::thread::Builder::new()
            .name("tinyhttp-recv".into())
            .spawn(move || {
                let content_type =
                    tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/plain"[..])
                        .expect("a valid header");
                for request in recv.incoming_requests() {
                    let response =
                        tiny_http::Response::from_data(BODY).with_header(content_type.clone());
                    let _ = request.respond(response);
                }
            })
            .expect("spawn the baseline recv thread");
        TinyHttp {
            server,
            thread: Some(thread),
            port,
        }
    }

    /// CPU time of this baseline's threads alive now, per thread (see [`ThreadsCpu::since`]).
    pub fn cpu_seconds(&self) -> ThreadsCpu {
        threads_cpu(Self::THREADS)
    }
}

impl Drop for TinyHttp {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The raw tungstenite echo server, one thread per client, in this process.
pub struct TungsteniteEcho {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    counters: Arc<EchoCounters>,
}

/// Echo threads alive, and the CPU time (ns) of the echo threads that have ended.
#[derive(Default)]
struct EchoCounters {
    live: AtomicUsize,
    ended_cpu_ns: AtomicU64,
}

impl TungsteniteEcho {
    /// Name prefix of every thread of this baseline (accept and echo threads).
    pub const THREADS: &'static str = "tungst-";

    pub fn start() -> TungsteniteEcho {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the baseline echo server");
        let port = listener.local_addr().expect("baseline address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(EchoCounters::default());
        let (accept_stop, accept_counters) = (stop.clone(), counters.clone());
        let accept = std::thread::Builder::new()
            .name("tungst-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let counters = accept_counters.clone();
                    counters.live.fetch_add(1, Ordering::SeqCst);
                    let spawned = std::thread::Builder::new()
                        .name("tungst-echo".into())
                        .spawn(move || {
                            echo_client(stream);
                            let ns = (this_thread_cpu_seconds() * 1e9) as u64;
                            counters.ended_cpu_ns.fetch_add(ns, Ordering::SeqCst);
                            counters.live.fetch_sub(1, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        accept_counters.live.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            })
            .expect("spawn the baseline accept thread");
        TungsteniteEcho {
            port,
            stop,
            accept: Some(accept),
            counters,
        }
    }

    /// CPU time (s) of this baseline so far: the echo threads that have ended (each adds its own
    /// thread CPU time, `CLOCK_THREAD_CPUTIME_ID`, as it ends) plus the accept thread. Call it when no client is connected:
    /// it first waits (at most [`WAIT`]) until every echo thread of the clients that left has
    /// ended, so a thread is counted once it has finished; `Err` if some did not end in time.
    pub fn cpu_seconds(&self) -> Result<f64, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let live = self.counters.live.load(Ordering::SeqCst);
            if live == 0 {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{live} echo thread(s) still running {WAIT:?} after their clients left"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let ended = self.counters.ended_cpu_ns.load(Ordering::SeqCst) as f64 / 1e9;
        // Only the accept thread: an echo thread that has just added its time may still be
        // listed in /proc for a moment.
        Ok(ended + threads_cpu("tungst-accept").total())
    }
}

/// Echoes every text/binary message back to its sender until the client goes away.
fn echo_client(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    loop {
        match ws.read() {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(message).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

impl Drop for TungsteniteEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}
