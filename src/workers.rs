//! The connection threads of one HTTP listener or WebSocket server, counted so that stopping the
//! server can wake them and wait for them to end (a join with a deadline), instead of leaving them
//! to die at their next timeout.
//!
//! Each thread holds a [`Worker`] for its lifetime, with the socket it blocks on. Stopping shuts
//! those sockets down (a blocked read returns at once) and waits until every `Worker` is dropped.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A set of live connection threads.
#[derive(Debug, Default)]
pub struct Workers {
    state: Mutex<State>,
    ended: Condvar,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    sockets: HashMap<u64, Arc<TcpStream>>,
}

/// Membership of one thread in a [`Workers`] set; dropping it (when the thread ends) removes it.
#[derive(Debug)]
pub struct Worker {
    set: Arc<Workers>,
    id: u64,
}

impl Workers {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a thread panicked mid-update; the map stays consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a thread serving `socket`, unless `max` threads are live already.
    pub fn enroll(self: &Arc<Self>, socket: Arc<TcpStream>, max: usize) -> Option<Worker> {
        let mut state = self.lock();
        if state.sockets.len() >= max {
            return None;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.sockets.insert(id, socket);
        Some(Worker {
            set: self.clone(),
            id,
        })
    }

    /// Shuts down every live thread's socket in direction `how`: `Read` wakes a thread blocked
    /// reading (it sees the peer gone) but lets it finish writing; `Both` also fails its writes.
    pub fn shutdown(&self, how: Shutdown) {
        for socket in self.lock().sockets.values() {
            let _ = socket.shutdown(how);
        }
    }

    /// Waits until no thread is live, at most `timeout`. Returns how many are still live.
    pub fn wait_ended(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while !state.sockets.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .ended
                .wait_timeout(state, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        state.sockets.len()
    }

    /// Stops every live thread and waits for them: first `Read` is shut down, so idle threads end
    /// at once while those writing a response may finish within `grace`; then both directions,
    /// and another short wait. Returns how many threads were still live after that (they end on
    /// their own, at their socket's next failure).
    pub fn stop_all(&self, grace: Duration) -> usize {
        self.shutdown(Shutdown::Read);
        if self.wait_ended(grace) == 0 {
            return 0;
        }
        self.shutdown(Shutdown::Both);
        self.wait_ended(Duration::from_secs(1))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let mut state = self.set.lock();
        state.sockets.remove(&self.id);
        if state.sockets.is_empty() {
            self.set.ended.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    #[test]
    fn enroll_respects_the_limit_and_drop_frees_a_slot() {
        let set = Arc::new(Workers::default());
        let (_c1, s1) = pair();
        let (_c2, s2) = pair();
        let w1 = set.enroll(Arc::new(s1), 1).expect("first fits");
        let s2 = Arc::new(s2);
        assert!(set.enroll(s2.clone(), 1).is_none());
        drop(w1);
        assert_eq!(set.wait_ended(Duration::ZERO), 0);
        assert!(set.enroll(s2, 1).is_some());
    }

    #[test]
    fn stop_all_wakes_a_blocked_reader_and_waits_for_it() {
        let set = Arc::new(Workers::default());
        let (_client, server) = pair();
        let server = Arc::new(server);
        let worker = set.enroll(server.clone(), 10).expect("room");
        let thread = std::thread::spawn(move || {
            let _worker = worker;
            let mut buf = [0u8; 16];
            // Blocks until stop_all shuts the socket down; then reads end-of-stream.
            (&*server).read(&mut buf).map_err(|e| e.kind())
        });
        assert_eq!(set.stop_all(Duration::from_secs(10)), 0);
        assert_eq!(thread.join().expect("reader thread"), Ok(0));
    }
}
