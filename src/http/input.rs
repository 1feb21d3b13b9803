//! A read buffer over a blocking socket where every read is bounded by a deadline.
//!
//! Timeouts are deadlines, not per-read idle timers: before each blocking read the socket's read
//! timeout is set to the time left, so a client trickling one byte at a time cannot hold a
//! connection past its deadline (slowloris). Nothing here polls: a read blocks until data, the
//! deadline, or the peer closing.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;

use crate::socket::Socket;
use std::time::{Duration, Instant};

/// Why a read did not produce bytes.
#[derive(Debug)]
pub enum ReadError {
    /// The deadline passed first.
    Timeout,
    /// The peer closed the connection (or it was shut down locally).
    Closed,
    /// Any other socket error.
    Io(io::Error),
}

/// Buffered input from one connection. Bytes between `start` and `end` are unread.
pub struct Input {
    // Shared so a server being stopped can shut the socket down under a blocked read.
    stream: Arc<Socket>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    timeout_set: Option<Duration>,
}

const READ_CHUNK: usize = 8 * 1024;

impl Input {
    /// Wraps a plain stream.
    pub fn new(stream: TcpStream) -> Input {
        Input::shared(Arc::new(Socket::plain(stream)))
    }

    /// Wraps a socket that others may hold too (to shut it down).
    pub fn shared(stream: Arc<Socket>) -> Input {
        Input {
            stream,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            timeout_set: None,
        }
    }

    /// The unread bytes.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` buffered bytes as read.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
    }

    /// Reads more bytes from the socket, blocking until some arrive or `deadline` passes.
    /// Returns how many were added.
    pub fn fill(&mut self, deadline: Instant) -> Result<usize, ReadError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grow = self.buf.len().max(READ_CHUNK);
                self.buf.resize(self.buf.len() + grow, 0);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::Timeout);
        }
        // Only touch the socket option when the value changes noticeably (a syscall per read
        // otherwise); rounding up to 10 ms keeps the deadline within 10 ms.
        let wanted = Some(round_up(left));
        if self.timeout_set != wanted {
            self.stream
                .tcp()
                .set_read_timeout(wanted)
                .map_err(ReadError::Io)?;
            self.timeout_set = wanted;
        }
        match self.stream.read(&mut self.buf[self.end..]) {
            Ok(0) => Err(ReadError::Closed),
            Ok(n) => {
                self.end += n;
                Ok(n)
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Err(ReadError::Timeout),
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => Err(ReadError::Closed),
                io::ErrorKind::Interrupted => Ok(0),
                _ => Err(ReadError::Io(e)),
            },
        }
    }

    /// Appends `bytes` to the unread ones, as if read from the socket (bytes another thread read
    /// off it for this connection).
    pub fn extend(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let need = self.end + bytes.len();
        if need > self.buf.len() {
            self.buf.resize(need, 0);
        }
        self.buf[self.end..need].copy_from_slice(bytes);
        self.end = need;
    }

    /// Takes up to `max` buffered bytes, reading from the socket first if nothing is buffered.
    pub fn take_some(&mut self, max: usize, deadline: Instant) -> Result<&[u8], ReadError> {
        while self.start == self.end {
            self.fill(deadline)?;
        }
        let n = max.min(self.end - self.start);
        let s = self.start;
        self.start += n;
        Ok(&self.buf[s..s + n])
    }

    /// The shared handle on the socket (for writing from another thread).
    pub fn shared_stream(&self) -> &Arc<Socket> {
        &self.stream
    }

    /// The connection's socket, for writing responses.
    pub fn stream(&self) -> &Socket {
        &self.stream
    }

    /// Whether bytes of the connection wait to be read: buffered here, or (TLS) decrypted in its
    /// session.
    pub fn has_input(&self) -> bool {
        self.start != self.end || self.stream.holds_input()
    }

    /// Gives up the socket and the bytes read from it but not consumed (a connection handed
    /// over to another protocol keeps them).
    pub fn into_parts(self) -> (Arc<Socket>, Vec<u8>) {
        let leftover = self.buf[self.start..self.end].to_vec();
        (self.stream, leftover)
    }
}

fn round_up(d: Duration) -> Duration {
    let ms = d.as_millis().div_ceil(10) * 10;
    Duration::from_millis(ms.clamp(10, u64::MAX as u128) as u64)
}
