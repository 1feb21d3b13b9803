//! The HTTP/1.1 engine: listeners, connections, wire format, and the client.
//!
//! Follow a request: [`listener`] accepts, [`connection`] reads it ([`head`], [`body`] over
//! [`input`]) and sends an `http_request` event to the Lua thread carrying an [`exchange`]; the
//! script builds the response in the exchange; the connection thread writes it ([`response`]),
//! or the Lua thread does, for a small one ([`direct`]). Between requests an idle keep-alive
//! connection parks with the Lua thread ([`crate::lane`]), which then reads a small next request
//! itself.

pub mod body;
pub mod client;
pub mod connection;
pub mod direct;
pub mod exchange;
pub mod head;
pub mod input;
pub mod listener;
pub mod response;

#[cfg(test)]
mod stream_tests;
