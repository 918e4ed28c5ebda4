//! One client connection: its socket, protocol state and bounded buffers.
//!
//! The worker owns connections in a slab; this module knows how to queue outgoing bytes
//! (with the send-buffer bound) and how to flush them, but nothing about apps or routing.

pub mod buffer;
pub mod handover;

use crate::config::Scheme;
use crate::protocol::text::LineCodec;
use crate::protocol::websocket::decoder::Decoder;
use crate::tls::session::{Got, Scratch, TlsSession};
use buffer::{Flush, OutBuf};
use mio::net::TcpStream;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Waiting for a complete HTTP request (WebSocket upgrade or plain HTTP).
    Handshake,
    /// Exchanging messages.
    Open,
    /// We are closing: no more input is delivered; flush output, then shut down writing.
    Closing,
    /// Writing is shut down; discard input until the peer closes or the linger deadline passes.
    Lingering,
}

impl ConnState {
    /// Upper-case name shown by `kefu connections` (see also [`Conn::state_name`]).
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Handshake => "HANDSHAKE",
            ConnState::Open => "ESTABLISHED",
            ConnState::Closing => "CLOSING",
            ConnState::Lingering => "LINGER",
        }
    }
}

/// How messages to this connection are framed (fixed once the handshake is done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Not yet known (HTTP request pending): app messages are not deliverable.
    None,
    /// WebSocket frames.
    Ws,
    /// Lines ending in `\n`.
    Text,
}

/// Whether bytes from a connection are read and decoded now. Reads stop for one reason at a
/// time; what resumes them is the variant's to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Bytes are read and decoded as they arrive.
    Flowing,
    /// Our output to this client is backed up: nothing is read or decoded until it drains
    /// (the client's requests wait in its socket and in `in_buf`).
    Paused,
    /// The output drained after a pause: `in_buf` may hold whole messages left undecoded, and
    /// they come before anything new on the socket. The worker has queued a read.
    Resumed,
    /// The app is preparing the answer to an HTTP request: nothing is read or decoded until it
    /// answers (the connection closes after that answer).
    AwaitingApp,
}

impl Input {
    /// Stop reading because the output is backed up (an app answer being prepared already
    /// stops reading, and its answer closes the connection, so it stays as it is).
    pub fn pause(&mut self) {
        if *self != Input::AwaitingApp {
            *self = Input::Paused;
        }
    }

    /// The output drained: true if reading was paused and must be picked up again. The loop
    /// is edge-triggered, so bytes that arrived during the pause raise no new event; the
    /// caller queues a read.
    pub fn resume(&mut self) -> bool {
        if *self == Input::Paused {
            *self = Input::Resumed;
            return true;
        }
        false
    }

    /// Whether an HTTP answer from the app is awaited.
    pub fn awaiting_app(self) -> bool {
        self == Input::AwaitingApp
    }

    /// The app answered its pending HTTP request.
    pub fn app_answered(&mut self) {
        if *self == Input::AwaitingApp {
            *self = Input::Flowing;
        }
    }
}

/// permessage-deflate (RFC 7692) on one connection. No compression context is kept per
/// connection (none is ever taken over), so the state is only what was agreed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deflate {
    /// Not offered by the listener, or not agreed with the client.
    #[default]
    Off,
    /// The listener offers it; decided at the WebSocket handshake.
    Allowed,
    /// Agreed, with the largest window our compressor may use (8..=15 bits).
    On(u8),
}

/// Decoder state of a connection (taken out of the connection while its bytes are processed).
#[derive(Debug)]
pub enum Proto {
    /// Before the HTTP request is complete.
    Http,
    /// RFC 6455 after the 101 answer.
    Ws(Box<Decoder>),
    /// `\n`-delimited lines.
    Text(LineCodec),
}

/// A client connection.
#[derive(Debug)]
pub struct Conn {
    /// Generation of this slab slot's occupant: makes stale ids miss instead of hitting a newcomer.
    pub gen: u32,
    /// The socket.
    pub stream: TcpStream,
    /// The listener's scheme.
    pub scheme: Scheme,
    /// Lifecycle state.
    pub state: ConnState,
    /// Decoder state.
    pub proto: Proto,
    /// Framing of outgoing messages.
    pub framing: Framing,
    /// Whether messages to and from this WebSocket client may be compressed.
    pub deflate: Deflate,
    /// Bytes received but not yet decoded (empty most of the time: reads go to a shared scratch buffer).
    pub in_buf: Vec<u8>,
    /// Bytes waiting to be written.
    pub out: OutBuf,
    /// Bytes read from the socket.
    pub bytes_read: u64,
    /// Bytes written to the socket.
    pub bytes_written: u64,
    /// Peer address. (The local address is not kept: `stream.local_addr()` answers the rare
    /// reader, and 32 bytes per connection add up.)
    pub remote: SocketAddr,
    /// Last time a byte arrived.
    pub last_active: Instant,
    /// The deadline of the current state: the handshake's (`Handshake`), the login's (`Open`,
    /// until the app authenticates the client), the linger's (`Closing`, `Lingering`). The idle
    /// deadline is derived from `last_active` instead.
    pub deadline: Option<Instant>,
    /// When the earliest pending deadline check for this connection fires.
    pub timer_at: Option<Instant>,
    /// Whether input is read and decoded now.
    pub input: Input,
    /// In the worker's dirty list (has output to flush this turn).
    pub in_dirty: bool,
    /// The connection is a gateway client (registered, `on_connect` ran), so `on_close` must run.
    pub app_connected: bool,
    /// HTTP requests answered on this connection while keeping it open (keep-alive).
    pub requests_served: u64,
    /// The TLS session of a connection to a TLS listener (boxed: plain connections pay one
    /// pointer).
    pub tls: Option<Box<TlsSession>>,
}

impl Conn {
    /// A freshly accepted connection.
    pub fn new(
        gen: u32,
        stream: TcpStream,
        scheme: Scheme,
        remote: SocketAddr,
        now: Instant,
        max_line: usize,
        deflate: bool,
    ) -> Conn {
        let (state, proto, framing) = match scheme {
            Scheme::Text => (
                ConnState::Open,
                Proto::Text(LineCodec::new(max_line)),
                Framing::Text,
            ),
            Scheme::Websocket | Scheme::Http | Scheme::Api => {
                (ConnState::Handshake, Proto::Http, Framing::None)
            }
        };
        Conn {
            gen,
            stream,
            scheme,
            state,
            proto,
            framing,
            deflate: if deflate && framing == Framing::None {
                Deflate::Allowed
            } else {
                Deflate::Off
            },
            in_buf: Vec::new(),
            out: OutBuf::default(),
            bytes_read: 0,
            bytes_written: 0,
            remote,
            last_active: now,
            deadline: None,
            timer_at: None,
            input: Input::Flowing,
            in_dirty: false,
            app_connected: false,
            requests_served: 0,
            tls: None,
        }
    }

    /// Read (decrypted) bytes into `buf`, like `Read::read` on the socket ([`Got::Bytes`]);
    /// over TLS the ciphertext goes through the worker's `scratch`, a short count also means
    /// the socket is drained, and a read may stop early (see [`TlsSession::read`]).
    pub fn read_in(&mut self, buf: &mut [u8], scratch: &mut Scratch) -> io::Result<Got> {
        match &mut self.tls {
            None => self.stream.read(buf).map(Got::Bytes),
            Some(t) => t.read(&mut self.stream, buf, scratch, self.remote),
        }
    }

    /// Bytes wait to be written: queued output, or TLS records (handshake answers included).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Write the queued output (`turn`: the turn's fan-out bytes), through TLS (records made
    /// in the worker's `scratch`) when the connection has it; returns plaintext bytes taken
    /// and whether everything went out.
    pub fn flush_out(&mut self, turn: &[u8], scratch: &mut Scratch) -> io::Result<(usize, Flush)> {
        let Some(t) = &mut self.tls else {
            return self.out.flush_to(&mut self.stream, turn);
        };
        let (n, flushed) = self
            .out
            .flush_to(&mut t.writer(&mut self.stream, scratch), turn)?;
        if flushed == Flush::Done && !t.push(&mut self.stream)? {
            return Ok((n, Flush::Blocked));
        }
        Ok((n, flushed))
    }

    /// Shut down writing (after the last byte was flushed): a TLS connection says
    /// close_notify first.
    pub fn shutdown_write(&mut self) {
        if let Some(t) = &mut self.tls {
            t.close_notify(&mut self.stream);
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// State name for `kefu connections`: a keep-alive HTTP connection waiting for its next
    /// request is `IDLE`, not `HANDSHAKE` (it has served requests; nothing is being set up).
    pub fn state_name(&self) -> &'static str {
        if self.state == ConnState::Handshake && self.requests_served > 0 {
            "IDLE"
        } else {
            self.state.name()
        }
    }

    /// Protocol name for `kefu connections`.
    pub fn protocol_name(&self) -> &'static str {
        match (self.framing, self.tls.is_some()) {
            (Framing::Ws, false) => "websocket",
            (Framing::Text, false) => "text",
            (Framing::None, false) => "http",
            (Framing::Ws, true) => "wss",
            (Framing::Text, true) => "text+tls",
            (Framing::None, true) => "https",
        }
    }

    /// An HTTP connection between requests: it was answered before, nothing received of a
    /// next request, nothing left to send, no answer awaited from the app. Closing it loses nothing, so a stopping worker
    /// does so at once instead of waiting for the client to hang up.
    pub fn idle_http(&self) -> bool {
        self.bytes_read > 0
            && self.state == ConnState::Handshake
            && self.framing == Framing::None
            && self.in_buf.is_empty()
            && self.out.is_empty()
            && !self.input.awaiting_app()
    }

    /// Whether app messages may still be queued to this connection.
    pub fn accepts_messages(&self) -> bool {
        self.state == ConnState::Open
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    /// Every idle connection pays for these: keep them from growing unnoticed.
    #[test]
    fn per_connection_sizes() {
        // 216: the send queue grew from 32 to 48 bytes (a segment list instead of one Vec) so
        // that a room broadcast is queued as a range of one shared buffer, not copied per member.
        // 224: the TLS session pointer (a plain connection pays these 8 bytes, no more).
        assert!(std::mem::size_of::<super::Conn>() <= 224);
        // 48 bytes + malloc's 8-byte header fit the 64-byte size class (56 would not).
        assert!(std::mem::size_of::<super::Decoder>() <= 48);
    }
}
