//! Responses the Lua thread writes itself, so that the common request wakes no thread twice.
//!
//! Without this, a request costs two thread hand-offs: the connection thread hands the request
//! to the Lua thread, then waits to be woken to write the response. With it, while the Lua thread
//! answers, the connection thread sleeps in `poll(2)` on its socket *and* a per-connection
//! `eventfd`. When the script finishes a small response whole, the Lua thread puts it on the
//! socket with one non-blocking `send` (see [`Direct::send`]); if the socket takes it all (the
//! common case: a few hundred bytes into an empty socket buffer), nobody is woken, and the
//! connection thread next wakes when the client sends its next request, or, when the request
//! came through a parked connection ([`crate::lane`]), not at all: the Lua thread reads that one
//! too. Only what the socket did not take, and every other kind of work (streamed parts, body
//! reads, an abandoned response), pokes the eventfd and goes through the connection thread as
//! before.
//!
//! Linux only (`eventfd`, `poll`); elsewhere [`Waker::new`] returns `None` and every response
//! goes through the connection thread.

use std::io;
use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::response::WireOptions;
use crate::socket::Socket;

/// Largest response body written by the Lua thread; larger ones go through the connection thread
/// (no point copying a big body into one buffer to have most of it handed over anyway).
pub const DIRECT_MAX_BODY: usize = 64 * 1024;

/// What the Lua side needs to write a whole response itself.
#[derive(Debug)]
pub struct Direct {
    /// The connection's socket.
    pub stream: Arc<Socket>,
    /// Wakes the connection thread from [`Waker::wait`].
    pub waker: Arc<Waker>,
    /// The request's wire options (its keep-alive is the most the response may keep).
    pub opts: WireOptions,
    /// The listener has been stopped: no keep-alive.
    pub stopped: Arc<AtomicBool>,
    /// How long a kept-alive connection may sit idle (the connection thread, asleep while the
    /// Lua side answers, wakes at least this often to enforce it).
    pub keep_alive_timeout: Duration,
}

impl Direct {
    /// Writes as much of `bytes` as the socket takes without blocking; returns how many it took.
    /// An error means the client is gone (or the socket is broken): the connection thread will
    /// find out when it writes the rest.
    pub fn send(&self, bytes: &[u8]) -> io::Result<usize> {
        self.stream.send_nonblocking(bytes)
    }
}

/// What [`Waker::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Woken {
    /// The socket has what was watched for: something to read (the next request, or the client
    /// closing), or for [`Waker::wait_hangup`], the client closing.
    pub socket: bool,
    /// The waker was poked.
    pub poked: bool,
}

/// A connection thread's alarm clock: an `eventfd` the Lua side pokes, waited on together with
/// the connection's socket.
#[derive(Debug)]
pub struct Waker {
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl Waker {
    /// A new waker, or `None` if the system refused an `eventfd` (out of descriptors): the
    /// connection is then served without direct writes.
    pub fn new() -> Option<Waker> {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: eventfd takes no pointers; a non-negative return is a new descriptor that
        // nothing else owns, so OwnedFd may take it (and close it once).
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            log::debug!("eventfd: {}", io::Error::last_os_error());
            return None;
        }
        // SAFETY: see above.
        Some(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Wakes the thread in [`Waker::wait`] (or makes its next wait return at once).
    pub fn poke(&self) {
        use std::os::fd::AsRawFd;
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to a descriptor this struct owns. It cannot
        // block (EFD_NONBLOCK); the only failure, a counter at its maximum, still leaves it
        // readable, which is all a poke needs.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Sleeps until poked, `socket` (when given) is readable or closed, or `timeout` passes.
    /// A poke is consumed.
    pub fn wait(&self, socket: Option<&TcpStream>, timeout: Duration) -> Woken {
        self.wait_for(socket, libc::POLLIN, timeout)
    }

    /// Sleeps until poked, the client closes `socket` (or it is shut down here), or `timeout`
    /// passes; a request arriving does not wake it. A poke is consumed.
    pub fn wait_hangup(&self, socket: Option<&TcpStream>, timeout: Duration) -> Woken {
        self.wait_for(socket, libc::POLLRDHUP, timeout)
    }

    fn wait_for(
        &self,
        socket: Option<&TcpStream>,
        events: libc::c_short,
        timeout: Duration,
    ) -> Woken {
        use std::os::fd::AsRawFd;
        let mut fds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: socket.map_or(-1, |s| s.as_raw_fd()),
                events,
                revents: 0,
            },
        ];
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a live array of two pollfd for the duration of the call; a negative
        // fd is ignored by poll(2).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if n <= 0 {
            return Woken {
                socket: false,
                poked: false,
            };
        }
        let poked = fds[0].revents != 0;
        if poked {
            let mut count: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64 from a descriptor this struct owns; it
            // cannot block (EFD_NONBLOCK).
            unsafe { libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        }
        Woken {
            socket: fds[1].revents != 0,
            poked,
        }
    }
}

#[cfg(not(target_os = "linux"))]
impl Waker {
    /// Direct writes need Linux's `eventfd`: none here.
    pub fn new() -> Option<Waker> {
        None
    }

    /// Never called: there is no waker.
    pub fn poke(&self) {}

    /// Never called: there is no waker.
    pub fn wait(&self, _socket: Option<&TcpStream>, _timeout: Duration) -> Woken {
        Woken {
            socket: false,
            poked: false,
        }
    }

    /// Never called: there is no waker.
    pub fn wait_hangup(&self, _socket: Option<&TcpStream>, _timeout: Duration) -> Woken {
        self.wait(None, _timeout)
    }
}
