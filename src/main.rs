//! The `ccserve` command: run a Lua server script (CraftOS-PC, lua-http or NodeMCU API).

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ccserve::{Config, Runtime};

const USAGE: &str = "\
Usage: ccserve [OPTIONS] SCRIPT.lua [ARGS...]

Runs a Lua server script written for CraftOS-PC's HTTP API, for lua-http's http.server
(require \"http.server\"), or for NodeMCU's httpserver (with --nodemcu). ARGS are passed to
the script as `...` and `arg`.

Options:
      --bind ADDR                    address listeners bind to (default 0.0.0.0: all IPv4
                                     interfaces; 127.0.0.1 for this machine only, :: for IPv4
                                     and IPv6)
      --root DIR                     the directory the fs API sees as / (default: the script's
                                     directory)
      --id N                         what os.getComputerID() returns (default 0)
      --label NAME                   what os.getComputerLabel() returns until the script sets one
      --max-body BYTES               largest request body accepted, larger gets 413
                                     (default 16777216)
      --max-connections N            open connections per listener, more get 503 (default 1024)
      --stream-buffer BYTES          response bytes queued per connection while streaming; a
                                     writer that fills it waits for the client (default 262144)
      --max-stream-body BYTES        largest request body read piece by piece by an API that
                                     streams bodies (default: no limit)
      --max-request-line BYTES       longest request line, longer gets 414 (default 8192)
      --max-header-bytes BYTES       largest request head, larger gets 431 (default 65536)
      --max-headers N                most header fields, more get 431 (default 100)
      --event-queue N                native events waiting for the script before producers wait
                                     (default 1024)
      --max-queued-events N          events os.queueEvent may have waiting (default 65536)
      --response-timeout SECONDS     a response the script never closes is sent as buffered
                                     after this long (default 15, as CraftOS-PC)
      --keep-alive-timeout SECONDS   idle time before a keep-alive connection closes (default 15)
      --header-timeout SECONDS       time to send a request head, else 408 (default 15)
      --body-timeout SECONDS         time to send a request body, else 408 (default 60)
      --ws-max-message BYTES         largest WebSocket message each way; a client sending more is
                                     closed with 1009 (default 16777216)
      --ws-max-clients N             clients per WebSocket server, more are closed with 1013
                                     (default 1024)
      --tls-cert FILE                certificate chain (PEM) of TLS listeners; re-read when it
                                     changes (needs --tls-key)
      --tls-key FILE                 private key (PEM) of --tls-cert
      --ca-file FILE                 extra certificate authorities (PEM) HTTPS/WSS clients trust,
                                     beside the system's
      --nodemcu                      run a NodeMCU program: firmware modules (node, tmr, file,
                                     sjson, wifi, gpio, adc, http) as globals, require
                                     \"httpserver\", callbacks kept running after the main
                                     chunk returns
      --no-batch-threads             run socket threads under the default Linux scheduling policy
                                     instead of SCHED_BATCH (see README, Performance)
      --busy-poll MICROSECONDS       longest the Lua thread looks for its next event before it
                                     sleeps, when events came that close lately; 0: sleep at
                                     once (default 50, see README, Performance)
  -v, --verbose                      log more (-v info, -vv debug, -vvv trace); RUST_LOG
                                     overrides
  -h, --help                         print this help
  -V, --version                      print the version

On Linux with glibc, the allocator is limited to 2 arenas (steady memory under many short-lived
connection threads, see README); set MALLOC_ARENA_MAX to choose another number.

Ctrl+C or SIGTERM queues a `terminate` event; a second one exits at once (status 130).
Exit status: 0 when the script ends, 1 on an uncaught Lua error, 2 on a usage error,
130 when the script is stopped by an uncaught `terminate`.";

/// Parsed command line.
struct Cli {
    config: Config,
    verbosity: usize,
    script: String,
    args: Vec<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Option<Cli>, String> {
    let mut config = Config::default();
    let mut verbosity = 0;
    loop {
        let Some(a) = argv.next() else {
            return Err("no script given (try --help)".into());
        };
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| argv.next())
                .ok_or_else(|| format!("{name} needs a value (try --help)"))
        };
        match flag.as_str() {
            "-h" | "--help" => {
                print_out(USAGE);
                return Ok(None);
            }
            "-V" | "--version" => {
                print_out(&format!("ccserve {}", env!("CARGO_PKG_VERSION")));
                return Ok(None);
            }
            "--bind" => {
                let v = value("--bind")?;
                config.bind = v
                    .parse::<IpAddr>()
                    .map_err(|_| format!("--bind: '{v}' is not an IP address"))?;
            }
            "--max-body" => {
                let v = value("--max-body")?;
                config.max_body = v
                    .parse()
                    .map_err(|_| format!("--max-body: '{v}' is not a number of bytes"))?;
            }
            "--max-connections" => {
                let v = value("--max-connections")?;
                config.max_connections = v
                    .parse()
                    .map_err(|_| format!("--max-connections: '{v}' is not a number"))?;
            }
            "--root" => {
                let v = value(&flag)?;
                if !std::path::Path::new(&v).is_dir() {
                    return Err(format!("--root: '{v}' is not a directory"));
                }
                config.root = Some(v.into());
            }
            "--id" => {
                let v = value(&flag)?;
                config.computer_id = v
                    .parse()
                    .map_err(|_| format!("--id: '{v}' is not a computer id (0 or more)"))?;
            }
            "--label" => config.computer_label = Some(value(&flag)?),
            "--no-batch-threads" => config.batch_io_threads = false,
            "--busy-poll" => {
                let v = value(&flag)?;
                let us: u64 = v.parse().map_err(|_| {
                    format!("--busy-poll: '{v}' is not a number of microseconds (0 turns it off)")
                })?;
                if us > 10_000 {
                    return Err(format!(
                        "--busy-poll: {us} µs is more than 10000 (10 ms); busy polling only pays \
                         for waits far shorter than a sleep"
                    ));
                }
                config.busy_poll = std::time::Duration::from_micros(us);
            }
            "--nodemcu" => config.nodemcu = true,
            "--tls-cert" => config.tls_cert = Some(existing_file(&flag, value(&flag)?)?),
            "--tls-key" => config.tls_key = Some(existing_file(&flag, value(&flag)?)?),
            "--ca-file" => config.ca_file = Some(existing_file(&flag, value(&flag)?)?),
            "--ws-max-message" => {
                let v = value(&flag)?;
                config.ws_max_message = v
                    .parse()
                    .map_err(|_| format!("--ws-max-message: '{v}' is not a number of bytes"))?;
            }
            "--ws-max-clients" => {
                let v = value(&flag)?;
                config.ws_max_clients = v
                    .parse()
                    .map_err(|_| format!("--ws-max-clients: '{v}' is not a number"))?;
            }
            "--stream-buffer" => config.stream_buffer = count(&flag, &value(&flag)?)?,
            "--max-stream-body" => {
                let v = value(&flag)?;
                config.max_stream_body = v
                    .parse()
                    .map_err(|_| format!("--max-stream-body: '{v}' is not a number of bytes"))?;
            }
            "--max-request-line" => config.max_request_line = count(&flag, &value(&flag)?)?,
            "--max-header-bytes" => config.max_header_bytes = count(&flag, &value(&flag)?)?,
            "--max-headers" => config.max_headers = count(&flag, &value(&flag)?)?,
            "--event-queue" => config.event_queue_capacity = count(&flag, &value(&flag)?)?,
            "--max-queued-events" => config.max_queued_events = count(&flag, &value(&flag)?)?,
            "--response-timeout" => config.response_timeout = seconds(&flag, &value(&flag)?)?,
            "--keep-alive-timeout" => config.keep_alive_timeout = seconds(&flag, &value(&flag)?)?,
            "--header-timeout" => config.header_timeout = seconds(&flag, &value(&flag)?)?,
            "--body-timeout" => config.body_timeout = seconds(&flag, &value(&flag)?)?,
            "--" => {
                let script = argv.next().ok_or("no script given after --")?;
                return Ok(Some(Cli {
                    config,
                    verbosity,
                    script,
                    args: argv.collect(),
                }));
            }
            f if f.starts_with("-v") && f[1..].chars().all(|c| c == 'v') => {
                verbosity += f.len() - 1;
            }
            "--verbose" => verbosity += 1,
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(format!("unknown option '{f}' (try --help)"));
            }
            _ => {
                return Ok(Some(Cli {
                    config,
                    verbosity,
                    script: a,
                    args: argv.collect(),
                }));
            }
        }
    }
}

/// Prints `text` and a newline on stdout; a closed stdout (`ccserve --help | head -1`) is not
/// an error worth a panic.
fn print_out(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// A path that names a readable file.
fn existing_file(flag: &str, v: String) -> Result<std::path::PathBuf, String> {
    if std::path::Path::new(&v).is_file() {
        Ok(v.into())
    } else {
        Err(format!("{flag}: '{v}' is not a file"))
    }
}

/// Parses a positive whole number.
fn count(flag: &str, v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag}: '{v}' is not a positive whole number"))
}

/// Parses a positive number of seconds (fractions allowed).
fn seconds(flag: &str, v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{flag}: '{v}' is not a positive number of seconds"))
}

/// How many malloc arenas the `ccserve` binary lets glibc create (see [`limit_malloc_arenas`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`], unless `MALLOC_ARENA_MAX` is set (glibc has
/// then applied the user's choice already).
///
/// glibc gives threads their own arenas, up to 8 per core, and every connection thread lands in
/// one of them. Each arena keeps its own high-water mark of fragmentation, so under hours of
/// connections coming and going the resident size crept up arena by arena: the 10-minute soak
/// test grew 7.3-10.5 % with 15 arenas, and 1-2 % with 2, starting 1.2 MiB lower (README,
/// "Security"). The socket threads allocate little and briefly, so sharing arenas costs them no
/// measurable throughput (README, "Performance"). The binary does this, not the library: the
/// allocator belongs to the program that embeds ccserve.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: `mallopt` only sets a tuning parameter of glibc's allocator; M_ARENA_MAX with a
    // positive value is a documented parameter. It runs first thing in `main`, before this
    // program starts any thread, and glibc takes its allocator lock around the change anyway.
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) };
    if ok != 1 {
        eprintln!("ccserve: could not limit malloc arenas (mallopt returned {ok}); continuing");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

/// Raises the soft limit on open files to the hard limit, as nginx and Go's runtime do. Each
/// connection holds its socket and, on Linux, the `eventfd` its thread sleeps on (README, "How it
/// works"): with the common soft limit of 1,024 the default `--max-connections` of 1,024 could
/// not be reached. The hard limit, set by the administrator (systemd: `LimitNOFILE=`), still
/// holds. The binary does this, not the library, as with the allocator.
#[cfg(target_os = "linux")]
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the live struct it is given; setrlimit reads one.
    // Raising the soft limit up to the hard limit needs no privilege.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn raise_open_files_limit() {}

/// NodeMCU's `node.restart()`: the program has ended, its listeners are closed; start it again
/// as it was started, in this process (so a supervisor sees one service, and the port is free).
#[cfg(unix)]
fn restart_program() -> ExitCode {
    use std::os::unix::process::CommandExt;
    eprintln!("ccserve: node.restart(): starting the program again");
    let err = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec(),
        Err(e) => e,
    };
    eprintln!("ccserve: node.restart(): cannot start the program again: {err}");
    ExitCode::FAILURE
}

#[cfg(not(unix))]
fn restart_program() -> ExitCode {
    eprintln!("ccserve: node.restart(): the program ended; restarting needs a Unix system");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    raise_open_files_limit();
    let cli = match parse(std::env::args().skip(1)) {
        Ok(Some(cli)) => cli,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccserve: {e}");
            return ExitCode::from(2);
        }
    };
    let level = ["warn", "info", "debug", "trace"][cli.verbosity.min(3)];
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();

    let script = std::path::Path::new(&cli.script);
    if !script.is_file() {
        let why = if script.is_dir() {
            "it is a directory, not a script (a directory for the fs API is given with --root)"
        } else {
            "no such file"
        };
        eprintln!("ccserve: cannot read script '{}': {why}", cli.script);
        return ExitCode::from(2);
    }
    let mut runtime = match Runtime::new(cli.config) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ccserve: {e}");
            return ExitCode::FAILURE;
        }
    };

    // First Ctrl+C/SIGTERM: a `terminate` event, as CraftOS's Ctrl+T. Second: exit now.
    let events = runtime.sender();
    let signals = AtomicUsize::new(0);
    let installed = ctrlc::set_handler(move || {
        if signals.fetch_add(1, Ordering::SeqCst) >= 1 {
            eprintln!("ccserve: interrupted twice, exiting");
            std::process::exit(130);
        }
        let events = events.clone();
        // Sending may wait for room in the queue; never block the signal thread on it.
        std::thread::spawn(move || events.terminate());
    });
    if let Err(e) = installed {
        log::warn!("cannot install the Ctrl+C handler: {e}");
    }

    let result = runtime.run_file(&cli.script, &cli.args);
    let restart = runtime.restart_requested();
    drop(runtime);
    match result {
        Ok(()) if restart => restart_program(),
        Ok(()) => ExitCode::SUCCESS,
        Err(ccserve::Error::Terminated) => {
            eprintln!("Terminated");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
