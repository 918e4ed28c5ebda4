//! What a poll reports: events, the batch holding their payloads, why a connection ended.

use crate::ws::WsError;
use std::fmt;
use std::io;
use std::time::Instant;

/// Message payload kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text frame / text line.
    Text,
    /// Binary frame.
    Binary,
}

/// Why a connection ended.
#[derive(Debug)]
pub enum CloseReason {
    /// The TCP connect failed.
    Connect(io::Error),
    /// Read or write failed after connecting.
    Io(io::Error),
    /// The server closed the TCP stream.
    Eof,
    /// The server sent a WebSocket close frame.
    ServerClose,
    /// Handshake or framing violation.
    Protocol(WsError),
    /// Connect + handshake took too long.
    HandshakeTimeout,
    /// A text line exceeded the size limit.
    LineTooLong,
    /// The TLS session failed (bad certificate, alert, bad record).
    Tls(rustls::Error),
}

impl CloseReason {
    /// Short stable label for error tallies.
    pub fn label(&self) -> String {
        match self {
            CloseReason::Connect(e) => format!("connect: {}", io_label(e)),
            CloseReason::Io(e) => format!("io: {}", io_label(e)),
            CloseReason::Eof => "eof".into(),
            CloseReason::ServerClose => "server close frame".into(),
            CloseReason::Protocol(e) => e.to_string(),
            CloseReason::HandshakeTimeout => "handshake timeout".into(),
            CloseReason::LineTooLong => "text line too long".into(),
            CloseReason::Tls(e) => format!("tls: {e}"),
        }
    }
}

fn io_label(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{:?} (os error {code})", e.kind()),
        None => format!("{:?}", e.kind()),
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Something that happened to a connection during one `poll`.
#[derive(Debug)]
pub enum Event {
    /// Connected (and upgraded, for WebSocket); `setup_us` is connect start to ready.
    Open {
        /// Local connection id.
        id: usize,
        /// Microseconds from starting the connect to being ready.
        setup_us: u64,
    },
    /// A complete message; its payload is `batch.arena[start..end]`.
    Message {
        /// Local connection id.
        id: usize,
        /// Text or binary.
        kind: Kind,
        /// Payload start in the arena.
        start: usize,
        /// Payload end in the arena.
        end: usize,
        /// When it was read.
        at: Instant,
    },
    /// The connection is gone; `was_open` tells setup failures from later drops.
    Closed {
        /// Local connection id.
        id: usize,
        /// Whether it had completed setup.
        was_open: bool,
        /// Why it ended.
        reason: CloseReason,
    },
}

/// Events from one poll plus the payload bytes they refer to.
#[derive(Default)]
pub struct Batch {
    /// Events in arrival order.
    pub events: Vec<Event>,
    /// Message payloads, referenced by `Event::Message` ranges.
    pub arena: Vec<u8>,
}

impl Batch {
    /// Empties the batch for the next loop turn (keeps allocations).
    pub fn clear(&mut self) {
        self.events.clear();
        self.arena.clear();
    }

    /// Payload of a message event's range.
    pub fn payload(&self, start: usize, end: usize) -> &[u8] {
        &self.arena[start..end]
    }
}

/// Appends one complete message to the batch (its payload copied into the arena).
pub(super) fn push_message(batch: &mut Batch, id: usize, kind: Kind, payload: &[u8], at: Instant) {
    let start = batch.arena.len();
    batch.arena.extend_from_slice(payload);
    batch.events.push(Event::Message {
        id,
        kind,
        start,
        end: batch.arena.len(),
        at,
    });
}
