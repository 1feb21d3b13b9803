//! One request/response exchange, shared by the connection thread that will write the response
//! and the Lua handle that builds it.
//!
//! The Lua thread only ever touches memory here; the socket stays with the connection thread. The
//! response is "closed" exactly once, by whichever comes first: the script's `res.close()`, the
//! response timeout, the handle being garbage-collected, its listener being removed, or the
//! script ending. Every later use from Lua sees it closed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::response::Response;

/// The response under construction, and whether it is final.
#[derive(Debug)]
struct Slot {
    response: Response,
    closed: bool,
}

/// Shared between a connection thread and a Lua handle.
#[derive(Debug)]
pub struct Exchange {
    slot: Mutex<Slot>,
    ready: Condvar,
    /// Whether the request reached the script (its handles were built).
    delivered: AtomicBool,
}

/// The response was already closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl Exchange {
    /// A new exchange with the default response (`200`, no headers, empty body).
    pub fn new() -> Arc<Exchange> {
        Arc::new(Exchange {
            slot: Mutex::new(Slot {
                response: Response::status(200),
                closed: false,
            }),
            ready: Condvar::new(),
            delivered: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // A poisoned lock only means another thread panicked mid-update; the data is plain.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the open response, or fails if it is closed.
    pub fn with_open<T>(&self, f: impl FnOnce(&mut Response) -> T) -> Result<T, Closed> {
        let mut slot = self.lock();
        if slot.closed {
            return Err(Closed);
        }
        Ok(f(&mut slot.response))
    }

    /// Notes that the script received the request (its handles exist).
    pub fn mark_delivered(&self) {
        self.delivered.store(true, Ordering::SeqCst);
    }

    /// Whether the response is closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The script closes the response: it is sent as built.
    pub fn close(&self) -> Result<(), Closed> {
        let mut slot = self.lock();
        if slot.closed {
            return Err(Closed);
        }
        slot.closed = true;
        self.ready.notify_all();
        Ok(())
    }

    /// Closes the response with a bare error status, dropping what the script buffered, unless it
    /// is already closed. Returns whether it was still open.
    pub fn abandon(&self, status: u16) -> bool {
        let mut slot = self.lock();
        if slot.closed {
            return false;
        }
        slot.response = Response::plain(status);
        slot.closed = true;
        self.ready.notify_all();
        true
    }

    /// Waits until the response is closed or `deadline` passes, then takes it. At the deadline the
    /// response is closed as it stands (what was buffered is sent, as CraftOS-PC does), or, if
    /// the request never reached the script (it is not pulling events), answered `503`.
    pub fn wait(&self, deadline: Instant) -> Response {
        let mut slot = self.lock();
        while !slot.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                slot.closed = true;
                if self.delivered.load(Ordering::SeqCst) {
                    log::debug!("response not closed in time; sending what was buffered");
                } else {
                    log::debug!("request never reached the script; answering 503");
                    slot.response = Response::plain(503);
                }
                break;
            }
            slot = self
                .ready
                .wait_timeout(slot, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        std::mem::replace(&mut slot.response, Response::status(200))
    }
}

/// Owned by the Lua side. If it is dropped while the response is still open (the handle was
/// garbage-collected, or the event was never delivered, or the VM closed), the client is answered
/// with `status_on_drop` instead of being left waiting.
#[derive(Debug)]
pub struct ExchangeGuard {
    exchange: Arc<Exchange>,
    status_on_drop: u16,
}

impl ExchangeGuard {
    /// Guards `exchange`.
    pub fn new(exchange: Arc<Exchange>) -> ExchangeGuard {
        ExchangeGuard {
            exchange,
            status_on_drop: 500,
        }
    }

    /// The shared exchange.
    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    /// Sets the status sent if this guard is dropped while the response is open.
    pub fn set_status_on_drop(&mut self, status: u16) {
        self.status_on_drop = status;
    }
}

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        if self.exchange.abandon(self.status_on_drop) {
            log::debug!(
                "response handle dropped while open; answered {}",
                self.status_on_drop
            );
        }
    }
}
