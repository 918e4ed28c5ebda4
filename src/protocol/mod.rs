//! Pure protocol code: bytes in, frames or typed errors out. No sockets, no clocks, no logging.
//!
//! `text` is Workerman's `\n`-delimited protocol, `http` is the HTTP/1.1 subset needed for the
//! WebSocket upgrade, pages and a JSON API, `websocket` is the server side of RFC 6455,
//! `gateway` GatewayWorker's inner frames and Register lines, `php` PHP's `serialize()` format,
//! `record` the length-prefixed records of a reload's hand-over.

pub mod b64;
pub mod gateway;
pub mod http;
pub mod php;
pub mod record;
pub mod text;
pub mod websocket;

/// One message as the protocols carry it, whatever the framing.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A WebSocket text message (valid UTF-8) or a text-protocol line that is valid UTF-8.
    Text(&'a str),
    /// A WebSocket binary message, or a text-protocol line that is not valid UTF-8.
    Binary(&'a [u8]),
}

impl<'a> Payload<'a> {
    /// The raw bytes.
    pub fn bytes(&self) -> &'a [u8] {
        match *self {
            Payload::Text(s) => s.as_bytes(),
            Payload::Binary(b) => b,
        }
    }
}
