//! One live connection as a typed record: what a retiring worker hands its successor at a
//! reload. The socket itself travels beside the record (SCM_RIGHTS); the record carries the
//! rest of its state: where it is in its life, its decoder, the bytes read but not yet
//! decoded, the bytes queued but not yet written, its counters and its deadlines (as time
//! left, since an `Instant` means nothing to another process), and for a TLS connection its
//! session's keys and buffers (`tls::carry::TlsCarry`; the successor goes on with our own
//! record layer).
//!
//! The records travel in a binary serde format (`protocol::record`): a field added here is a
//! new hand-over format (`state::handover::FORMAT`), and the types stay plain (no internally
//! tagged enums, no `skip_serializing_if`, no `serde_json::Value`).

use super::{Conn, ConnState, Framing, Input, Proto};
use crate::config::Scheme;
use crate::protocol::text::LineCodec;
use crate::protocol::websocket::decoder::{Decoder, DecoderState, StateError};
use crate::tls::carry::TlsCarry;
use crate::tls::record::RecordError;
use crate::tls::session::TlsSession;
use mio::net::TcpStream;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where the connection is in its life (see [`ConnState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateRecord {
    /// Waiting for a complete HTTP request (first one, or the next on a keep-alive connection).
    Handshake,
    /// Exchanging messages.
    Open,
    /// Closing: flush, then shut down writing.
    Closing,
    /// Writing shut down; waiting for the peer to hang up.
    Lingering,
}

/// The decoder (see [`Proto`]), without its limits: the successor applies its own config's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtoRecord {
    /// Before a complete HTTP request.
    Http,
    /// WebSocket frames, with the decoder's state between calls.
    Ws {
        /// The decoder's state.
        state: DecoderState,
    },
    /// Text lines (the line codec keeps nothing a rescan cannot rebuild).
    Text,
}

/// Whether input flows (see [`Input`]); an app answer being awaited is never handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputRecord {
    /// Read and decoded as it arrives.
    Flowing,
    /// Paused: the output is backed up.
    Paused,
    /// Resumed after a pause: unread input comes first.
    Resumed,
}

/// A live connection's state, minus its socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnRecord {
    /// Slab slot in the worker (part of the client id, kept by the successor).
    pub slot: u32,
    /// Generation of the slot's occupant (likewise).
    pub gen: u32,
    /// The listener's scheme.
    pub scheme: Scheme,
    /// Lifecycle state.
    pub state: StateRecord,
    /// Decoder.
    pub proto: ProtoRecord,
    /// Framing of messages to the client: `None` until the handshake, then WebSocket or text.
    pub framing: Option<Scheme>,
    /// Read, not yet decoded (a WebSocket frame's front may already be unmasked: the
    /// decoder's `frame_progress` says how far).
    #[serde(with = "crate::protocol::b64")]
    pub unread: Vec<u8>,
    /// Queued, not yet written.
    #[serde(with = "crate::protocol::b64")]
    pub unsent: Vec<u8>,
    /// Bytes read from the socket so far.
    pub bytes_read: u64,
    /// Bytes written so far.
    pub bytes_written: u64,
    /// Peer address.
    pub remote: SocketAddr,
    /// Milliseconds since a byte last arrived (the idle deadline counts from there).
    pub idle_ms: u64,
    /// Milliseconds left of the state's deadline (handshake, login, linger), if any.
    pub deadline_ms: Option<u64>,
    /// Whether input flows.
    pub input: InputRecord,
    /// A gateway client whose `on_close` is still due.
    pub app_connected: bool,
    /// HTTP requests answered on this connection.
    pub requests_served: u64,
    /// permessage-deflate as agreed.
    pub deflate: super::Deflate,
    /// The TLS session of a connection to a TLS listener.
    pub tls: Option<TlsCarry>,
}

/// Why a record cannot become a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdoptError {
    /// The decoder state is not resumable here.
    Decoder(StateError),
    /// The record contradicts itself (a WebSocket decoder on a text connection...).
    Inconsistent,
    /// The TLS session's keys or buffers are not usable.
    Tls(RecordError),
}

impl fmt::Display for AdoptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdoptError::Decoder(e) => write!(f, "decoder state: {e}"),
            AdoptError::Inconsistent => f.write_str("record contradicts itself"),
            AdoptError::Tls(e) => write!(f, "TLS session: {e}"),
        }
    }
}

impl std::error::Error for AdoptError {}

/// What a connection's record depends on besides the clock: while its mark is unchanged, a
/// record taken earlier still describes the connection (a reload copies the records ahead,
/// while the retiring worker keeps serving, and sends again only those whose mark moved).
/// Every change of the decoder, framing or compression comes with bytes read or a change of
/// input state, so the counters stand for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    gen: u32,
    bytes_read: u64,
    bytes_written: u64,
    queued: usize,
    unread: usize,
    state: ConnState,
    input: Input,
    last_active: Instant,
    deadline: Option<Instant>,
    app_connected: bool,
    requests_served: u64,
}

impl Mark {
    /// Whether it was taken of this connection (and not of an earlier one in its slot).
    pub fn is_of(&self, c: &Conn) -> bool {
        self.gen == c.gen
    }
}

/// Longest deadline a record may carry (one day).
const MAX_DEADLINE_MS: u64 = 24 * 3600 * 1000;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Conn {
    /// Whether this connection can move to another process now: an HTTP answer the app is
    /// still preparing belongs to this process's app and stays with it, and a TLS session
    /// moves only once established and on our record layer (`TlsSession::detach`); one in
    /// its handshake is closed by the retiring worker before the hand-over.
    pub fn movable(&self) -> bool {
        !self.input.awaiting_app() && self.tls.as_ref().is_none_or(|t| t.movable())
    }

    /// Whether its record may be copied ahead of the commit, while this process still
    /// serves it: a TLS session's secrets can leave the process only once, so such a
    /// connection moves at the commit only.
    pub fn copies_ahead(&self) -> bool {
        self.movable() && self.tls.is_none()
    }

    /// What its record depends on, but for the clock (see [`Mark`]).
    pub fn mark(&self) -> Mark {
        Mark {
            gen: self.gen,
            bytes_read: self.bytes_read,
            bytes_written: self.bytes_written,
            queued: self.out.len(),
            unread: self.in_buf.len(),
            state: self.state,
            input: self.input,
            last_active: self.last_active,
            deadline: self.deadline,
            app_connected: self.app_connected,
            requests_served: self.requests_served,
        }
    }

    /// This connection as a record (`slot`: its slab slot; `turn`: this turn's fan-out bytes).
    pub fn record(&self, slot: usize, turn: &[u8], now: Instant) -> ConnRecord {
        ConnRecord {
            slot: slot as u32,
            gen: self.gen,
            scheme: self.scheme,
            state: match self.state {
                ConnState::Handshake => StateRecord::Handshake,
                ConnState::Open => StateRecord::Open,
                ConnState::Closing => StateRecord::Closing,
                ConnState::Lingering => StateRecord::Lingering,
            },
            proto: match &self.proto {
                Proto::Http => ProtoRecord::Http,
                Proto::Ws(d) => ProtoRecord::Ws { state: d.state() },
                Proto::Text(_) => ProtoRecord::Text,
            },
            framing: match self.framing {
                Framing::None => None,
                Framing::Ws => Some(Scheme::Websocket),
                Framing::Text => Some(Scheme::Text),
            },
            unread: self.in_buf.clone(),
            unsent: self.out.pending_bytes(turn),
            bytes_read: self.bytes_read,
            bytes_written: self.bytes_written,
            remote: self.remote,
            idle_ms: millis(now.saturating_duration_since(self.last_active)),
            deadline_ms: self
                .deadline
                .map(|d| millis(d.saturating_duration_since(now))),
            input: match self.input {
                Input::Paused => InputRecord::Paused,
                Input::Resumed => InputRecord::Resumed,
                Input::Flowing | Input::AwaitingApp => InputRecord::Flowing,
            },
            app_connected: self.app_connected,
            requests_served: self.requests_served,
            deflate: self.deflate,
            tls: self.tls.as_ref().and_then(|t| t.carry()),
        }
    }

    /// The connection a record describes, on `stream` (its socket, passed beside it), with
    /// this side's message limit; a record that cannot be adopted gives the socket back.
    pub fn adopt(
        mut r: ConnRecord,
        stream: TcpStream,
        now: Instant,
        max_message: usize,
    ) -> Result<Conn, (AdoptError, TcpStream)> {
        match Conn::parts(&mut r, max_message) {
            Ok(parts) => Ok(Conn::assemble(r, parts, stream, now)),
            Err(e) => Err((e, stream)),
        }
    }

    /// What of a record needs checking, taken out of it: its decoder, framing and TLS session.
    fn parts(r: &mut ConnRecord, max_message: usize) -> Result<Parts, AdoptError> {
        let unread = r.unread.len();
        let proto = match std::mem::replace(&mut r.proto, ProtoRecord::Http) {
            ProtoRecord::Http => Proto::Http,
            ProtoRecord::Ws { state } => Proto::Ws(Box::new(
                Decoder::resume(max_message, state, unread).map_err(AdoptError::Decoder)?,
            )),
            ProtoRecord::Text => Proto::Text(LineCodec::new(max_message)),
        };
        let framing = match r.framing {
            None => Framing::None,
            Some(Scheme::Websocket) => Framing::Ws,
            Some(Scheme::Text) => Framing::Text,
            Some(Scheme::Http | Scheme::Api) => return Err(AdoptError::Inconsistent),
        };
        let consistent = matches!(
            (&proto, framing),
            (Proto::Http, Framing::None)
                | (Proto::Ws(_), Framing::Ws)
                | (Proto::Text(_), Framing::Text)
        );
        if !consistent {
            return Err(AdoptError::Inconsistent);
        }
        let tls = match r.tls.take() {
            Some(carry) => Some(Box::new(
                TlsSession::resume(carry).map_err(AdoptError::Tls)?,
            )),
            None => None,
        };
        Ok(Parts {
            proto,
            framing,
            tls,
        })
    }

    /// The connection of a checked record.
    fn assemble(r: ConnRecord, parts: Parts, stream: TcpStream, now: Instant) -> Conn {
        let Parts {
            proto,
            framing,
            tls,
        } = parts;
        let mut out = super::buffer::OutBuf::default();
        if !r.unsent.is_empty() {
            out.push(&r.unsent);
        }
        let idle = Duration::from_millis(r.idle_ms);
        Conn {
            gen: r.gen,
            stream,
            scheme: r.scheme,
            state: match r.state {
                StateRecord::Handshake => ConnState::Handshake,
                StateRecord::Open => ConnState::Open,
                StateRecord::Closing => ConnState::Closing,
                StateRecord::Lingering => ConnState::Lingering,
            },
            proto,
            framing,
            in_buf: r.unread,
            out,
            bytes_read: r.bytes_read,
            bytes_written: r.bytes_written,
            remote: r.remote,
            last_active: now.checked_sub(idle).unwrap_or(now),
            // A deadline further than a day is not one this server sets: cap it rather than
            // overflow the clock.
            deadline: r
                .deadline_ms
                .map(|ms| now + Duration::from_millis(ms.min(MAX_DEADLINE_MS))),
            timer_at: None,
            input: match r.input {
                InputRecord::Flowing => Input::Flowing,
                InputRecord::Paused => Input::Paused,
                InputRecord::Resumed => Input::Resumed,
            },
            in_dirty: false,
            app_connected: r.app_connected,
            requests_served: r.requests_served,
            deflate: r.deflate,
            tls,
        }
    }
}

/// The checked parts of a record ([`Conn::adopt`]).
struct Parts {
    proto: Proto,
    framing: Framing,
    tls: Option<Box<TlsSession>>,
}
