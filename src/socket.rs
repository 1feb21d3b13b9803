//! The socket an HTTP connection is served on: a TCP (or UNIX) stream, and on an HTTPS listener
//! the TLS session over it. The engine reads and writes plain bytes through it either way, from
//! whichever thread has the connection at the time: its connection thread (blocking), or the Lua
//! thread for a parked connection (never blocking, [`crate::lane`], [`crate::http::direct`]).
//! So an HTTPS request takes the same path as a plain one, with the Lua thread decrypting and
//! encrypting in place of a thread hand-off.
//!
//! Everything about the socket itself (its descriptor, timeouts, shutting it down, polling it)
//! goes through [`Socket::tcp`]; only reads and writes of the connection's bytes differ.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::tls::Session;

/// One connection's socket, plain or TLS (see the module docs).
pub struct Socket {
    tcp: Arc<TcpStream>,
    /// Boxed: a session is over a kilobyte, which a plain connection should not carry.
    tls: Option<Box<Session>>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("tcp", &self.tcp)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// What a non-blocking read ([`Socket::recv_nonblocking`]) found.
pub enum Received<'a> {
    /// Bytes for the engine.
    Bytes(&'a [u8]),
    /// TLS records that carried nothing for the engine (a record's first part, a session
    /// message): watch the socket again.
    Nothing,
    /// The peer closed (or the session ended): its connection thread finds out and ends.
    Closed,
}

impl Socket {
    /// A plain connection.
    pub fn plain(tcp: TcpStream) -> Socket {
        Socket::shared(Arc::new(tcp))
    }

    /// A plain connection on a stream others hold too.
    pub fn shared(tcp: Arc<TcpStream>) -> Socket {
        Socket { tcp, tls: None }
    }

    /// A connection whose TLS handshake `session` finished on `tcp`.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn tls(tcp: TcpStream, session: Session) -> Socket {
        Socket {
            tcp: Arc::new(tcp),
            tls: Some(Box::new(session)),
        }
    }

    /// The socket itself: its descriptor, options and shutdown. Not for the connection's bytes.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// [`tcp`](Self::tcp), shared (to shut it down from another thread).
    pub fn tcp_shared(&self) -> &Arc<TcpStream> {
        &self.tcp
    }

    /// Reads plain bytes, blocking as the socket's read timeout allows; `Ok(0)` at the end.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.tls {
            None => (&*self.tcp).read(buf),
            Some(tls) => tls.read(&self.tcp, buf),
        }
    }

    /// Writes all of `buf`, blocking as the socket's write timeout allows. Over TLS, records an
    /// earlier [`send_nonblocking`](Self::send_nonblocking) left go first (also when `buf` is
    /// empty).
    pub fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        match &self.tls {
            None => (&*self.tcp).write_all(buf),
            Some(tls) => tls.write_all(&self.tcp, buf),
        }
    }

    /// Writes as much of `bytes` as the socket takes without blocking; returns how many bytes it
    /// took. Over TLS the bytes taken may still be partly in the session ([`pending`]), for the
    /// connection thread to send with its next [`write_all`](Self::write_all).
    ///
    /// [`pending`]: Self::pending
    pub fn send_nonblocking(&self, bytes: &[u8]) -> io::Result<usize> {
        match &self.tls {
            None => crate::net::send_nonblocking(&self.tcp, &[bytes]),
            Some(tls) => tls.send_nonblocking(&self.tcp, bytes),
        }
    }

    /// Whether bytes written are still waiting in the TLS session for the socket.
    pub fn pending(&self) -> bool {
        self.tls.as_deref().is_some_and(Session::pending)
    }

    /// Whether the TLS session holds decrypted bytes not yet read: the socket may have nothing
    /// to read while the connection does.
    pub fn holds_input(&self) -> bool {
        self.tls.as_deref().is_some_and(Session::holds_input)
    }

    /// Reads what the socket has without blocking (`WouldBlock` when nothing came). `raw`
    /// receives the socket's bytes; over TLS the plain ones land in `plain`. See
    /// [`crate::net::recv_nonblocking`].
    pub fn recv_nonblocking<'a>(
        &self,
        raw: &'a mut [MaybeUninit<u8>],
        plain: &'a mut Vec<u8>,
    ) -> io::Result<Received<'a>> {
        match &self.tls {
            None => Ok(match crate::net::recv_nonblocking(&self.tcp, raw)? {
                [] => Received::Closed,
                bytes => Received::Bytes(bytes),
            }),
            Some(tls) => {
                let open = tls.recv_nonblocking(&self.tcp, raw, plain)?;
                Ok(match (open, plain.is_empty()) {
                    (_, false) => Received::Bytes(plain),
                    (true, true) => Received::Nothing,
                    (false, true) => Received::Closed,
                })
            }
        }
    }

    /// Ends the sending side: over TLS with `close_notify` first.
    pub fn shutdown_write(&self) -> io::Result<()> {
        if let Some(tls) = &self.tls {
            tls.close(&self.tcp);
        }
        self.tcp.shutdown(Shutdown::Write)
    }

    /// A plain stream carrying this connection's bytes, for code that drives a socket itself
    /// (the WebSocket engine after an upgrade): the socket itself, or for TLS the far end of a
    /// socket pair with two threads pumping between it and the session (`stack`: their stack
    /// size; `write_timeout`: the longest a peer may keep a write waiting).
    pub fn into_stream(
        self: Arc<Self>,
        stack: usize,
        write_timeout: Duration,
    ) -> io::Result<Arc<TcpStream>> {
        if !self.is_tls() {
            return Ok(self.tcp.clone());
        }
        crate::tls::pumped(self, stack, write_timeout).map(Arc::new)
    }
}

impl Write for &Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Socket::write_all(self, buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Socket::write_all(self, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
