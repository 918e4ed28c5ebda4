//! Pure protocol code: bytes in, frames or typed errors out. No sockets, no clocks, no logging.
//!
//! `text` is Workerman's `\n`-delimited protocol, `http` is the HTTP/1.1 subset needed for the
//! WebSocket upgrade, pages and a JSON API, `websocket` is the server side of RFC 6455.

pub mod http;
pub mod text;
pub mod websocket;
