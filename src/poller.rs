//! What the Lua thread sleeps on when it has no event: its doorbell, and the sockets of idle
//! keep-alive connections parked with it.
//!
//! A thread-per-connection server wakes a connection thread for every request, and on a small
//! machine that context switch costs as much as the request itself. So a connection that goes
//! idle between requests, with nothing buffered, is *parked* ([`Parked`]): its thread sleeps
//! apart from its socket, and the socket joins this epoll set. When the client's next request
//! arrives, the Lua thread itself reads it with one non-blocking `recv`: a small complete request
//! (the common case) becomes an event at once and, answered with a direct write, the connection
//! is parked again; no other thread runs. Anything else (a partial head, a body, a pipelined
//! request, the client closing) is handed back to the connection thread with the bytes read, and
//! it serves the connection as before. The sources themselves decide (see
//! [`crate::http::lane`]); this module only watches.
//!
//! The doorbell is an `eventfd` in the same epoll set: a sender that finds the Lua thread asleep
//! writes to it (see [`crate::event::Doorbell`]).
//!
//! Linux only (`epoll`, `eventfd`); elsewhere [`Poller::new`] returns `None`, nothing parks, and
//! the Lua thread parks its thread as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::event::Event;

/// A source parked with the Lua thread: told when its socket is readable, and asked, after each
/// event the Lua thread handled, whether the work it started is over.
pub(crate) trait Parked: Send + Sync {
    /// Its socket became readable: new bytes arrived since it was armed or last reported (the
    /// registration is edge-triggered, so bytes already there when it was reported do not make
    /// it fire again; a source that may have left some re-arms). Also called for a source that
    /// is not parked at the moment (it says nothing then). Returns the event to deliver, if the
    /// source made one; the source is then [`settle`](Parked::settle)d until that says it is
    /// done.
    fn ready(self: Arc<Self>) -> Option<Event>;

    /// Called on the Lua thread before it looks for its next event, for a source whose
    /// [`ready`](Parked::ready) made one. Returns true when nothing is left to settle.
    fn settle(self: Arc<Self>) -> bool;
}

/// The key of the doorbell in the epoll set (sources use their own ids, which never reach it).
const BELL: u64 = u64::MAX;

/// The Lua thread's epoll set: the doorbell plus parked sockets.
pub(crate) struct Poller {
    #[cfg(target_os = "linux")]
    epoll: std::os::fd::OwnedFd,
    #[cfg(target_os = "linux")]
    bell: std::os::fd::OwnedFd,
    sources: Mutex<HashMap<u64, Arc<dyn Parked>>>,
    /// How many sources are registered (read without the lock).
    watching: AtomicUsize,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

#[cfg(target_os = "linux")]
impl Poller {
    /// A new poller, or `None` if the system refused the descriptors (the Lua thread then parks
    /// its thread and nothing is parked with it).
    pub(crate) fn new() -> Option<Poller> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: epoll_create1 and eventfd take no pointers; a non-negative return is a new
        // descriptor nothing else owns, so OwnedFd may take it (and close it once).
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            log::debug!("epoll_create1: {}", std::io::Error::last_os_error());
            return None;
        }
        // SAFETY: see above.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: see above.
        let bell = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if bell < 0 {
            log::debug!("eventfd: {}", std::io::Error::last_os_error());
            return None;
        }
        // SAFETY: see above.
        let bell = unsafe { OwnedFd::from_raw_fd(bell) };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: BELL,
        };
        // SAFETY: both descriptors are open and owned here; `ev` is a live epoll_event the
        // kernel only reads.
        if unsafe {
            libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                bell.as_raw_fd(),
                &mut ev,
            )
        } < 0
        {
            log::debug!("epoll_ctl: {}", std::io::Error::last_os_error());
            return None;
        }
        Some(Poller {
            epoll,
            bell,
            sources: Mutex::new(HashMap::new()),
            watching: AtomicUsize::new(0),
        })
    }

    /// Wakes the Lua thread from [`wait`](Poller::wait).
    pub(crate) fn ring(&self) {
        use std::os::fd::AsRawFd;
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to a descriptor this struct owns. It cannot
        // block (EFD_NONBLOCK); the only failure, a counter at its maximum, still leaves it
        // readable, which is all a ring needs.
        unsafe { libc::write(self.bell.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Watches `fd` for bytes arriving, edge-triggered, on behalf of `source` (known by `key`);
    /// if bytes are there already, that counts as an arrival. Called by the thread parking the
    /// source, and by the Lua thread when it parks it anew and bytes may have arrived unreported
    /// meanwhile. It stays watched, with no further system call, until [`disarm`]ed, so the Lua
    /// thread parking a source again after answering its request costs nothing.
    /// Returns false if the socket could not be watched (the caller then serves it itself).
    ///
    /// [`disarm`]: Poller::disarm
    pub(crate) fn arm(&self, key: u64, fd: std::os::fd::RawFd, source: &Arc<dyn Parked>) -> bool {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: key,
        };
        let new = {
            let mut sources = self.lock();
            let new = !sources.contains_key(&key);
            if new {
                sources.insert(key, source.clone());
                self.watching.fetch_add(1, Ordering::Relaxed);
            }
            new
        };
        let op = if new {
            libc::EPOLL_CTL_ADD
        } else {
            libc::EPOLL_CTL_MOD
        };
        // SAFETY: `fd` is the open socket of a source that stays registered (and its socket
        // open) until `remove`; `ev` is a live epoll_event the kernel only reads.
        let done = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) } == 0;
        if !done {
            log::debug!("epoll_ctl: {}", std::io::Error::last_os_error());
        }
        done
    }

    /// Stops watching `fd` for bytes (its thread reads them now), until it is armed again. The
    /// kernel still reports an error or hang-up, at most once (one-shot), to a source that then
    /// says nothing.
    pub(crate) fn disarm(&self, key: u64, fd: std::os::fd::RawFd) {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLET | libc::EPOLLONESHOT) as u32,
            u64: key,
        };
        // SAFETY: as in `arm`: `fd` is the open socket of a registered source; `ev` is a live
        // epoll_event the kernel only reads. Failing (not registered) leaves nothing to disarm.
        unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_MOD, fd, &mut ev) };
    }

    /// Stops watching `fd` and forgets the source. Called by the source's own thread before its
    /// socket may close.
    pub(crate) fn remove(&self, key: u64, fd: std::os::fd::RawFd) {
        use std::os::fd::AsRawFd;
        if self.lock().remove(&key).is_some() {
            self.watching.fetch_sub(1, Ordering::Relaxed);
            let mut ev = libc::epoll_event { events: 0, u64: 0 };
            // SAFETY: `fd` is still open (the caller holds its socket); `ev` is ignored by
            // EPOLL_CTL_DEL but must be non-null on old kernels.
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
        }
    }

    /// Waits until the doorbell rings or a watched socket turns readable, or `timeout` passes
    /// (`Some(ZERO)`: only look). Appends the sources that turned readable to `ready`.
    pub(crate) fn wait(&self, timeout: Option<Duration>, ready: &mut Vec<Arc<dyn Parked>>) {
        use std::os::fd::AsRawFd;
        const MAX: usize = 64;
        // Not zeroed: the kernel writes the first `n`, and only those are read.
        let mut events = [std::mem::MaybeUninit::<libc::epoll_event>::uninit(); MAX];
        let ms = match timeout {
            None => -1,
            Some(t) if t.is_zero() => 0,
            // Rounded up: waking a little early would only make the caller wait again.
            Some(t) => t.as_micros().div_ceil(1000).clamp(1, i32::MAX as u128) as libc::c_int,
        };
        // SAFETY: `events` is a live array of MAX epoll_event the kernel writes at most MAX of
        // (MaybeUninit<T> has T's layout).
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr().cast(),
                MAX as libc::c_int,
                ms,
            )
        };
        if n <= 0 {
            return;
        }
        let sources = self.lock();
        for ev in &events[..n as usize] {
            // SAFETY: epoll_wait initialised the first `n` entries.
            let key = unsafe { ev.assume_init_ref() }.u64;
            if key == BELL {
                let mut count: u64 = 0;
                // SAFETY: reads 8 bytes into a live u64 from a descriptor this struct owns; it
                // cannot block (EFD_NONBLOCK).
                unsafe { libc::read(self.bell.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
            } else if let Some(source) = sources.get(&key) {
                ready.push(source.clone());
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
impl Poller {
    /// Parking needs Linux's `epoll`: none here.
    pub(crate) fn new() -> Option<Poller> {
        None
    }

    /// Never called: there is no poller.
    pub(crate) fn ring(&self) {}

    /// Never called: there is no poller.
    pub(crate) fn arm(&self, _key: u64, _fd: i32, _source: &Arc<dyn Parked>) -> bool {
        false
    }

    /// Never called: there is no poller.
    pub(crate) fn disarm(&self, _key: u64, _fd: i32) {}
    pub(crate) fn remove(&self, _key: u64, _fd: i32) {}

    /// Never called: there is no poller.
    pub(crate) fn wait(&self, _timeout: Option<Duration>, _ready: &mut Vec<Arc<dyn Parked>>) {}
}

impl Poller {
    /// Whether any source is registered (a look at the epoll set can find something).
    pub(crate) fn watching(&self) -> bool {
        self.watching.load(Ordering::Relaxed) > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<dyn Parked>>> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }
}
