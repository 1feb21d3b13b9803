//! Runtime configuration: one struct, with the defaults documented in README.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can be tuned about a [`Runtime`](crate::Runtime).
///
/// Build one with [`Config::default`] and change the fields you need; the CLI maps its flags onto
/// these fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address HTTP listeners bind to. Default `0.0.0.0` (all IPv4 interfaces), as CraftOS-PC.
    pub bind: IpAddr,
    /// Largest request body accepted; a larger one is answered `413`. Default 16 MiB.
    pub max_body: usize,
    /// Longest request line (method, target, version); longer is answered `414`. Default 8 KiB.
    pub max_request_line: usize,
    /// Largest request head (request line plus headers); larger is answered `431`. Default 64 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in one request; more is answered `431`. Default 100.
    pub max_headers: usize,
    /// Most simultaneous connections per listener; beyond it a connection is answered `503` and
    /// closed. Default 1024.
    pub max_connections: usize,
    /// Time a client has to send a complete request head once it started; else `408`. Default 15 s.
    pub header_timeout: Duration,
    /// Time a client has to send a complete request body; else `408`. Default 60 s.
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection is kept open between requests. Default 15 s.
    pub keep_alive_timeout: Duration,
    /// Bound on each blocking socket write of a response; a client that reads nothing for this
    /// long is dropped. Default 30 s.
    pub write_timeout: Duration,
    /// A response the script never closes is sent with what was buffered after this long
    /// (CraftOS-PC: 15 s, counted from when the request was queued). Default 15 s.
    pub response_timeout: Duration,
    /// Most response bytes queued for one connection while a response is streamed (CraftOS's
    /// `res.flush()`, and APIs that write as they go): a writer that fills it waits until the
    /// client has taken half of it. Default 256 KiB.
    pub stream_buffer: usize,
    /// Largest request body an API that streams bodies accepts (`413`, or a failed read, beyond).
    /// Such bodies are read as the script asks, a piece at a time, so they need not fit in
    /// memory; `max_body` applies to bodies read whole. Default: no limit.
    pub max_stream_body: u64,
    /// Capacity of the channel carrying events from native threads into the Lua thread. A full
    /// channel makes producers wait (backpressure); nothing is dropped. Default 1024.
    pub event_queue_capacity: usize,
    /// Most events `os.queueEvent` may have waiting; one more raises an error (so a script that
    /// queues events in a loop without pulling them fails clearly instead of eating memory).
    /// CraftOS-PC has no limit; CC: Tweaked drops events beyond 256. Default 65536.
    pub max_queued_events: usize,
    /// Stack size of connection and client threads. Default 128 KiB.
    pub thread_stack_size: usize,
    /// Run the threads that serve sockets (HTTP connections, WebSocket readers and writers) under
    /// Linux's `SCHED_BATCH` policy, so that waking one to send a response does not preempt the
    /// Lua thread (see README, "Performance"). No effect elsewhere than Linux. Default `true`.
    pub batch_io_threads: bool,
    /// How long the Lua thread may keep looking for its next event before it sleeps, when events
    /// have lately come within that time of each other (adapted between zero and this; an idle
    /// server sleeps at once). Saves the sleep and wake-up on a busy server, for a little CPU
    /// while looking; see README, "Performance". Zero: always sleep at once. Default 50 µs.
    pub busy_poll: Duration,
    /// Largest WebSocket message received or sent. A client sending a larger one is closed with
    /// 1009; `send` of a larger one raises `Message is too large`. Default 16 MiB.
    pub ws_max_message: usize,
    /// Most clients connected to one WebSocket server; more are closed with 1013. Default 1024.
    pub ws_max_clients: usize,
    /// Messages queued for one WebSocket client before it counts as too slow and is closed.
    /// Default 1024.
    pub ws_send_queue: usize,
    /// The directory the `fs` API sees as `/`. `None`: the script's directory (for
    /// [`Runtime::run_file`](crate::Runtime::run_file)) or the current directory (for a chunk).
    pub root: Option<PathBuf>,
    /// What `os.getComputerID()` returns. Default 0.
    pub computer_id: u32,
    /// What `os.getComputerLabel()` returns until the script sets one. Default none.
    pub computer_label: Option<String>,
    /// Timeout of one outgoing `http.request` (connect, send, receive). Default 30 s.
    pub client_timeout: Duration,
    /// Largest response body `http.request` accepts. Default 16 MiB.
    pub client_max_download: usize,
    /// Run the script as a NodeMCU program (`src/nodemcu/`): the firmware modules (`node`, `tmr`,
    /// `file`, `sjson`, `wifi`, `gpio`, `adc`, `http`) are globals, `require "httpserver"` works, and
    /// after the main chunk returns its callbacks go on running while a server or timer is live.
    /// Default `false` (the CraftOS environment, unchanged).
    pub nodemcu: bool,
    /// The certificate chain (PEM) TLS listeners present; with [`tls_key`](Self::tls_key). Re-read
    /// when the file changes. Default none: a listener asking for TLS gets an error saying so.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of [`tls_cert`](Self::tls_cert).
    pub tls_key: Option<PathBuf>,
    /// Extra certificate authorities (PEM) HTTPS and WSS clients trust, beside the system's (for
    /// self-signed deployments and tests). Default none.
    pub ca_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            max_body: 16 * 1024 * 1024,
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_connections: 1024,
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(15),
            stream_buffer: 256 * 1024,
            max_stream_body: u64::MAX,
            event_queue_capacity: 1024,
            max_queued_events: 65536,
            thread_stack_size: 128 * 1024,
            batch_io_threads: true,
            busy_poll: Duration::from_micros(50),
            ws_max_message: 16 * 1024 * 1024,
            ws_max_clients: 1024,
            ws_send_queue: 1024,
            root: None,
            computer_id: 0,
            computer_label: None,
            client_timeout: Duration::from_secs(30),
            client_max_download: 16 * 1024 * 1024,
            nodemcu: false,
            tls_cert: None,
            tls_key: None,
            ca_file: None,
        }
    }
}
