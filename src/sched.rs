//! A scheduling hint for the threads that serve sockets.
//!
//! Every request and every WebSocket message crosses two threads: a socket thread hands it to the
//! Lua thread, and the Lua thread wakes the socket thread again to send the answer. Under load
//! Linux's default policy lets the thread being woken preempt the one waking it, so the Lua thread
//! was switched out at every `res.close()` or `send`, for a context switch per request on the one
//! thread every request needs (`hello.lua`, `wrk -c32`, 2 cores: 42k req/s, 90,000 involuntary
//! switches of the Lua thread in 3.5 s). `SCHED_BATCH` on the socket threads keeps their share of
//! the CPU and their priority but stops them from preempting on wake-up: the Lua thread finishes
//! its batch of events first (same run: 74-78k req/s, at 32 and at 256 connections). An idle core
//! still runs a woken thread at once, so a lightly loaded server answers as fast as before.
//!
//! The policy needs no privilege and applies to the calling thread only. Elsewhere than Linux
//! this does nothing. [`Config::batch_io_threads`](crate::Config::batch_io_threads) (CLI
//! `--no-batch-threads`) turns it off.

/// Marks the calling thread as a batch thread (see the module docs), if `enabled`.
pub fn batch_thread(enabled: bool) {
    if enabled {
        set_batch();
    }
}

#[cfg(target_os = "linux")]
fn set_batch() {
    // SAFETY: `sched_param` is a plain C struct of integers (plus, on musl, two `timespec`s of
    // integers), for which all-zero bytes are a valid value; priority 0 is the only one
    // SCHED_BATCH accepts.
    let param: libc::sched_param = unsafe { std::mem::zeroed() };
    // SAFETY: `pthread_self()` is the calling thread, alive for the whole call, and
    // `pthread_setschedparam` only reads `param`, a valid local that outlives the call. An
    // unprivileged thread may switch itself between SCHED_OTHER and SCHED_BATCH. (The per-thread
    // call, not `sched_setscheduler`, which musl leaves unimplemented.)
    let rc =
        unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_BATCH, &param) };
    if rc != 0 {
        log::debug!(
            "SCHED_BATCH not set for this thread: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn set_batch() {}
