//! Listening sockets shared by the HTTP listener and the WebSocket server: binding with our
//! options, the accept loop, and waking that loop to stop it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// Binds `addr` and listens. Returns the socket (kept to wake the accept loop), a listener for
/// the accept loop, and the bound address (the real port when `addr`'s port is 0).
/// `reuse_port` sets `SO_REUSEPORT`; `v6_only` chooses whether an IPv6 socket takes IPv4 too
/// (default: it does when bound to `::`).
pub fn bind(
    addr: SocketAddr,
    reuse_port: bool,
    v6_only: Option<bool>,
) -> io::Result<(Socket, TcpListener, SocketAddr)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // SO_REUSEADDR lets a port be bound again while old connections sit in TIME_WAIT; unlike
    // CraftOS-PC we never set SO_REUSEPORT unless asked, so a port held by anyone else is refused.
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    #[cfg(not(unix))]
    let _ = reuse_port;
    if addr.is_ipv6() {
        match v6_only {
            Some(only) => socket.set_only_v6(only)?,
            None if addr.ip().is_unspecified() => socket.set_only_v6(false)?,
            None => {}
        }
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("listener has no IP address"))?;
    let listener: TcpListener = socket.try_clone()?.into();
    Ok((socket, listener, local))
}

/// Accepts connections until `stopped` is set, handing each to `serve`. Never gives up on an
/// accept error (EMFILE and friends clear up when other connections close): it logs, backs off
/// briefly so a persistent error does not spin, and goes on.
pub fn accept_loop(
    listener: TcpListener,
    stopped: &AtomicBool,
    what: &str,
    serve: impl FnMut(TcpStream),
) {
    accept_from(
        || listener.accept().map(|(s, a)| (s, Some(a))),
        stopped,
        what,
        serve,
    );
}

/// [`accept_loop`] for a UNIX domain socket. Each connection is handed over as a `TcpStream`
/// holding the accepted socket (see [`unix_as_tcp`]).
#[cfg(unix)]
pub fn accept_unix_loop(
    listener: std::os::unix::net::UnixListener,
    stopped: &AtomicBool,
    what: &str,
    serve: impl FnMut(TcpStream),
) {
    let accept = || listener.accept().map(|(s, _)| (unix_as_tcp(s), None));
    accept_from(accept, stopped, what, serve);
}

/// A UNIX stream socket in the type the engine serves connections as. Everything the engine
/// does with a connection's `TcpStream` is a plain socket call that a UNIX stream socket takes
/// as well (read, write, shutdown, send and receive timeouts, `dup`, and our own `poll`,
/// `recv` and `send` on its descriptor); the TCP-only ones (`TCP_NODELAY`, an IP peer address)
/// fail, and the engine already treats their results as optional. The conversion itself is
/// safe: it only moves the owned descriptor.
#[cfg(unix)]
pub fn unix_as_tcp(stream: std::os::unix::net::UnixStream) -> TcpStream {
    TcpStream::from(std::os::fd::OwnedFd::from(stream))
}

/// Binds a UNIX domain stream socket at `path` and listens. With `unlink`, whatever is at the
/// path is removed first (as a stale socket file would otherwise make binding fail); with
/// `mode`, the socket file gets those permission bits once bound. Returns a handle on the
/// socket (kept to wake the accept loop) and the listener.
#[cfg(unix)]
pub fn bind_unix(
    path: &std::path::Path,
    unlink: bool,
    mode: Option<u32>,
) -> io::Result<(Socket, std::os::unix::net::UnixListener)> {
    use std::os::unix::fs::PermissionsExt;
    if unlink {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    let socket = Socket::from(std::os::fd::OwnedFd::from(listener.try_clone()?));
    Ok((socket, listener))
}

/// Makes a thread blocked in `accept` on the UNIX socket `socket`, bound at `path`, return
/// (set the stop flag first): shuts the socket down, and connects to it in case that did not.
#[cfg(unix)]
pub fn wake_unix_accept(socket: &Socket, path: &std::path::Path) {
    let _ = socket.shutdown(std::net::Shutdown::Both);
    let _ = std::os::unix::net::UnixStream::connect(path);
}

fn accept_from(
    mut accept: impl FnMut() -> io::Result<(TcpStream, Option<SocketAddr>)>,
    stopped: &AtomicBool,
    what: &str,
    mut serve: impl FnMut(TcpStream),
) {
    loop {
        match accept() {
            Ok((stream, peer)) => {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Some(peer) = peer {
                    log::debug!("{what}: connection from {peer}");
                }
                serve(stream);
            }
            Err(e) => {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                log::warn!("{what}: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Connects to `host:port` (trying each address it resolves to) before `deadline`. Errors are
/// worded for scripts (`Could not resolve host: …`, `Could not connect: …`, `Timed out`).
pub fn connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, String> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("Could not resolve host: {e}"))?;
    let mut last_err = "Could not resolve host".to_string();
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("Timed out".into());
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last_err = format!("Could not connect: {e}"),
        }
    }
    Err(last_err)
}

/// Writes as much of `parts` (one after the other) as `stream` takes without blocking, and
/// returns how many bytes it took; never blocks, whatever the socket's mode. Used by the Lua
/// thread to put a small response or frame straight on a socket whose own thread is asleep
/// (`http::direct`, `ws::connection`). Only on Linux; elsewhere it takes nothing, and the caller
/// hands everything to the socket's thread as before.
pub fn send_nonblocking(stream: &TcpStream, parts: &[&[u8]]) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        let sock = socket2::SockRef::from(stream);
        // Callers send one or two parts (a response; a frame's head and payload): no allocation.
        let mut array = [io::IoSlice::new(&[]); 4];
        let mut vec = Vec::new();
        let slices: &mut [io::IoSlice<'_>] = if parts.len() <= array.len() {
            for (slot, part) in array.iter_mut().zip(parts) {
                *slot = io::IoSlice::new(part);
            }
            &mut array[..parts.len()]
        } else {
            vec.extend(parts.iter().map(|p| io::IoSlice::new(p)));
            &mut vec
        };
        let mut left: &mut [io::IoSlice<'_>] = slices;
        let mut sent = 0;
        while left.iter().any(|s| !s.is_empty()) {
            match sock.send_vectored_with_flags(left, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) {
                Ok(0) => break,
                Ok(n) => {
                    sent += n;
                    io::IoSlice::advance_slices(&mut left, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (stream, parts);
        Ok(0)
    }
}

/// Reads what `stream` has without blocking, whatever the socket's mode: `WouldBlock` when it
/// has nothing, `Ok(0)` when the peer closed. Used by the Lua thread to read the next request of
/// a parked connection (`http::lane`). Linux only; elsewhere it always reports `WouldBlock`.
/// `buf` need not be initialised (the Lua thread reads into a fresh stack buffer on every
/// request, and zeroing it would cost as much as the read): the bytes returned are those the
/// kernel wrote.
pub fn recv_nonblocking<'a>(
    stream: &TcpStream,
    buf: &'a mut [std::mem::MaybeUninit<u8>],
) -> io::Result<&'a [u8]> {
    #[cfg(target_os = "linux")]
    loop {
        use std::os::fd::AsRawFd;
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes for the duration of the
        // call (recv only writes to it), and the descriptor is the open socket `stream` holds.
        let n = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            // SAFETY: recv wrote (initialised) the first `n` bytes of `buf`, n <= buf.len().
            return Ok(unsafe {
                std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize)
            });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (stream, buf);
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// Whether `stream` has something to read right now (data, or the peer closing); never waits.
/// Linux only; elsewhere false.
pub fn readable_now(stream: &TcpStream) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let mut fd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `fd` is one live pollfd for the duration of the call; a zero timeout never
        // blocks.
        unsafe { libc::poll(&mut fd, 1, 0) > 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = stream;
        false
    }
}

/// Makes a thread blocked in `accept` on `socket` return (set the stop flag first).
pub fn wake_accept(socket: &Socket, addr: SocketAddr) {
    // On Linux, shutting down a listening socket makes a blocked accept() fail at once.
    if socket.shutdown(std::net::Shutdown::Both).is_ok() && cfg!(target_os = "linux") {
        return;
    }
    // Elsewhere, connect to ourselves so accept() returns and the thread sees the stop flag.
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let _ = TcpStream::connect_timeout(&SocketAddr::new(ip, addr.port()), Duration::from_secs(1));
}
