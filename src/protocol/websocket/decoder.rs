//! Sans-I/O, server-side WebSocket message decoder (RFC 6455 §5, §6.2, §8.1). No I/O here.
//!
//! The caller owns the receive buffer and passes its unconsumed bytes; payloads are unmasked in
//! place. Any `Err` is fatal: the caller sends a Close with [`ProtocolError::close_code`] and
//! drops the connection; the decoder's state is unspecified afterwards.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::close::{self, is_valid_close_code};
use super::deflate::{InflateError, Inflater};
use super::frame::{OpCode, MAX_CONTROL_PAYLOAD};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;

/// Reassembly buffers larger than this are freed after use rather than kept per connection.
const KEEP_ASSEMBLY_CAPACITY: usize = 64 * 1024;

/// A complete message or control frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Complete, UTF-8-validated text message.
    Text(&'a str),
    /// Complete binary message.
    Binary(&'a [u8]),
    /// Ping with its application data (to be echoed in a Pong, §5.5.2).
    Ping(&'a [u8]),
    /// Pong (unsolicited or answering our ping).
    Pong(&'a [u8]),
    /// Close with optional status code and UTF-8 reason (§5.5.1).
    Close(Option<u16>, &'a str),
    /// A permessage-deflate message (RSV1 on its first frame, RFC 7692 §6.1), still compressed:
    /// [`inflate_message`] turns it into `Text` or `Binary`.
    Deflated {
        /// A text message (its inflated bytes must be UTF-8).
        text: bool,
        /// The payloads of its frames joined, without the 4-byte tail.
        payload: &'a [u8],
    },
}

/// Outcome of one [`Decoder::decode`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// Need more bytes; nothing consumed.
    Partial,
    /// A frame was absorbed (e.g. a non-final fragment) but no message is ready.
    Consumed(usize),
    /// A complete message/control frame, and the bytes consumed.
    Message(Message<'a>, usize),
}

/// A violation of RFC 6455 by the peer; fatal to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// Client frame without the mask bit (§5.1).
    Unmasked,
    /// RSV1-3 set without a negotiated extension (§5.2), or RSV1 where RFC 7692 §6.1 forbids
    /// it (control frames, continuation frames).
    ReservedBits,
    /// Opcode 0x3-0x7 or 0xB-0xF (§5.2).
    ReservedOpcode,
    /// Control frame without FIN (§5.5).
    FragmentedControl,
    /// Control frame payload over 125 bytes (§5.5).
    ControlTooLong,
    /// Continuation frame with no fragmented message open (§5.4).
    UnexpectedContinuation,
    /// New Text/Binary frame while a fragmented message is open (§5.4).
    ExpectedContinuation,
    /// Payload length not in its minimal encoding (§5.2).
    NonMinimalLength,
    /// 64-bit payload length with the most significant bit set (§5.2).
    LengthHighBit,
    /// Text message or close reason is not valid UTF-8 (§8.1).
    InvalidUtf8,
    /// Message larger than the configured maximum (§7.4.1, 1009).
    MessageTooBig,
    /// Close frame payload of exactly one byte (§5.5.1).
    BadClosePayload,
    /// Close frame with a code that may not be sent (§7.4).
    BadCloseCode,
    /// A compressed message that is not valid DEFLATE data (RFC 7692 §7.2.2).
    BadDeflate,
}

impl ProtocolError {
    /// Close code to send before dropping the connection.
    pub fn close_code(self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::BadDeflate => close::INVALID_DATA,
            ProtocolError::MessageTooBig => close::TOO_BIG,
            _ => close::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ProtocolError::Unmasked => "client frame is not masked",
            ProtocolError::ReservedBits => "reserved bits set",
            ProtocolError::ReservedOpcode => "reserved opcode",
            ProtocolError::FragmentedControl => "fragmented control frame",
            ProtocolError::ControlTooLong => "control frame payload over 125 bytes",
            ProtocolError::UnexpectedContinuation => "continuation frame without a started message",
            ProtocolError::ExpectedContinuation => "new data frame inside a fragmented message",
            ProtocolError::NonMinimalLength => "payload length not minimally encoded",
            ProtocolError::LengthHighBit => "64-bit payload length has its high bit set",
            ProtocolError::InvalidUtf8 => "invalid UTF-8 in text",
            ProtocolError::MessageTooBig => "message too big",
            ProtocolError::BadClosePayload => "close payload of one byte",
            ProtocolError::BadCloseCode => "invalid close code",
            ProtocolError::BadDeflate => "invalid deflate data",
        };
        f.write_str(s)
    }
}

impl std::error::Error for ProtocolError {}

/// Parsed fixed part of a frame.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    /// RSV1 on a first data frame: the message is compressed.
    compressed: bool,
    opcode: OpCode,
    mask: [u8; 4],
    /// Bytes up to and including the masking key.
    len: usize,
    payload_len: u64,
}

/// What a [`Decoder`] holds between calls besides its limit: a live connection's decoder
/// moves to another process in this form (a reload's hand-over) and is rebuilt with the
/// receiver's own limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecoderState {
    /// Opcode (1 text, 2 binary) of the fragmented message being assembled.
    pub frag_opcode: Option<u8>,
    /// Its payload so far.
    #[serde(with = "crate::protocol::b64")]
    pub assembled: Vec<u8>,
    /// Payload bytes of the frame at the front of the unread input already unmasked.
    pub frame_progress: usize,
    /// Bytes of a UTF-8 character cut by the end of what arrived (0 to 3).
    #[serde(with = "crate::protocol::b64")]
    pub utf8_pending: Vec<u8>,
    /// permessage-deflate as negotiated, and whether the message in progress is compressed
    /// (absent in a record from a build without compression: off).
    #[serde(default)]
    pub deflate: DeflateState,
}

/// Why a [`DecoderState`] cannot be resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// `frag_opcode` is not text or binary.
    BadOpcode,
    /// The assembled message is over the receiver's limit.
    TooBig,
    /// `utf8_pending` is not the start of a character.
    BadUtf8,
    /// `frame_progress` points past the unread input it counts.
    BadProgress,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateError::BadOpcode => "fragment opcode is not text or binary",
            StateError::TooBig => "assembled message over the message limit",
            StateError::BadUtf8 => "pending UTF-8 bytes are not a character's start",
            StateError::BadProgress => "frame progress past the unread input",
        })
    }
}

impl std::error::Error for StateError {}

/// Server-side message decoder for one connection.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_message_size: usize,
    /// Opcode (Text or Binary) of the fragmented message being assembled.
    frag_opcode: Option<OpCode>,
    /// Payload of the fragmented message so far.
    assembled: Vec<u8>,
    /// `assembled` was lent out by the previous call and must be emptied first.
    release_assembled: bool,
    /// Payload bytes of the frame at the front of the buffer already unmasked (and, for text,
    /// validated) during earlier `Partial` calls; they must not be unmasked twice.
    frame_progress: usize,
    /// UTF-8 state of the text message in progress (fragments or a partially received frame).
    utf8: Utf8Validator,
    /// Compression as negotiated, and whether the message being assembled is compressed.
    deflate: DeflateState,
}

/// permessage-deflate on one connection, from the decoder's side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeflateState {
    /// Not negotiated: RSV1 is a protocol error.
    #[default]
    Off,
    /// Negotiated; the fragmented message in progress (if any) is not compressed.
    Plain,
    /// Negotiated; the fragmented message in progress is compressed.
    Compressing,
}

impl Decoder {
    /// Decoder rejecting messages (after reassembly) larger than `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Decoder {
            max_message_size,
            frag_opcode: None,
            assembled: Vec::new(),
            release_assembled: false,
            frame_progress: 0,
            utf8: Utf8Validator::new(),
            deflate: DeflateState::Off,
        }
    }

    /// Accept compressed messages (RSV1), once permessage-deflate was negotiated.
    pub fn enable_deflate(&mut self) {
        if self.deflate == DeflateState::Off {
            self.deflate = DeflateState::Plain;
        }
    }

    /// Its state between calls (see [`DecoderState`]).
    pub fn state(&self) -> DecoderState {
        let released = self.release_assembled;
        DecoderState {
            frag_opcode: self
                .frag_opcode
                .map(|o| if o == OpCode::Text { 1 } else { 2 }),
            // A message lent out by the last call is over: it is not carried along.
            assembled: if released {
                Vec::new()
            } else {
                self.assembled.clone()
            },
            frame_progress: self.frame_progress,
            utf8_pending: self.utf8.pending().to_vec(),
            deflate: self.deflate,
        }
    }

    /// A decoder resuming `st` with this side's limit; `unread` is the length of the input
    /// left undecoded with it (which `frame_progress` counts into).
    pub fn resume(
        max_message_size: usize,
        st: DecoderState,
        unread: usize,
    ) -> Result<Self, StateError> {
        let frag_opcode = match st.frag_opcode {
            None => None,
            Some(1) => Some(OpCode::Text),
            Some(2) => Some(OpCode::Binary),
            Some(_) => return Err(StateError::BadOpcode),
        };
        if st.assembled.len() > max_message_size {
            return Err(StateError::TooBig);
        }
        if st.frame_progress > unread {
            return Err(StateError::BadProgress);
        }
        let utf8 = Utf8Validator::with_pending(&st.utf8_pending).ok_or(StateError::BadUtf8)?;
        Ok(Decoder {
            max_message_size,
            frag_opcode,
            assembled: st.assembled,
            release_assembled: false,
            frame_progress: st.frame_progress,
            utf8,
            // A compressed message in progress is only possible with compression agreed.
            deflate: match (st.deflate, frag_opcode) {
                (DeflateState::Compressing, None) => DeflateState::Plain,
                (d, _) => d,
            },
        })
    }

    /// The configured message size limit.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Whether a fragmented message is currently open.
    pub fn in_fragmented_message(&self) -> bool {
        self.frag_opcode.is_some()
    }

    /// Validate the frame header at the front of `buf`; `Ok(None)` if more bytes are needed.
    /// Every check is made as soon as the bytes it needs are present (fail fast).
    fn parse_header(&self, buf: &[u8]) -> Result<Option<Header>, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        if b0 & 0x30 != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode)?;
        let compressed = b0 & 0x40 != 0;
        // RFC 7692 §6.1: RSV1 only on the first frame of a data message, only if negotiated.
        if compressed
            && (self.deflate == DeflateState::Off
                || !matches!(opcode, OpCode::Text | OpCode::Binary))
        {
            return Err(ProtocolError::ReservedBits);
        }
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControl);
            }
        } else {
            match (opcode, self.frag_opcode) {
                (OpCode::Continue, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::Text | OpCode::Binary, Some(_)) => {
                    return Err(ProtocolError::ExpectedContinuation)
                }
                _ => {}
            }
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        if b1 & 0x80 == 0 {
            return Err(ProtocolError::Unmasked);
        }
        let len7 = b1 & 0x7F;
        if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlTooLong);
        }
        let (payload_len, ext) = match len7 {
            126 => {
                let Some(bytes) = buf.get(2..4).and_then(|b| <[u8; 2]>::try_from(b).ok()) else {
                    return Ok(None);
                };
                let v = u16::from_be_bytes(bytes);
                if v < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (u64::from(v), 2)
            }
            127 => {
                // The high bit is in the first length byte: reject before the other seven.
                if buf.get(2).is_some_and(|b| b & 0x80 != 0) {
                    return Err(ProtocolError::LengthHighBit);
                }
                let Some(bytes) = buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
                    return Ok(None);
                };
                let v = u64::from_be_bytes(bytes);
                if v >> 63 != 0 {
                    return Err(ProtocolError::LengthHighBit);
                }
                if v <= 0xFFFF {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (v, 8)
            }
            n => (u64::from(n), 0),
        };
        if !opcode.is_control() {
            // Refuse on the declared length, before buffering any payload (cumulative for
            // fragments), so a peer cannot make us hold more than the limit.
            let already = if opcode == OpCode::Continue {
                self.assembled.len()
            } else {
                0
            };
            let room = self.max_message_size.saturating_sub(already);
            if payload_len > room as u64 {
                return Err(ProtocolError::MessageTooBig);
            }
        }
        let mask_at = 2 + ext;
        let Some(mask) = buf
            .get(mask_at..mask_at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
        else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            compressed,
            opcode,
            mask,
            len: mask_at + 4,
            payload_len,
        }))
    }

    /// Decode from the front of `buf`, unmasking payload bytes in place.
    ///
    /// Unfragmented messages are slices of `buf` (zero-copy); fragmented ones come from an
    /// internal buffer. After `Partial`, call again with the same unconsumed bytes plus any new
    /// ones (the buffer may have moved; its contents must be the same).
    pub fn decode<'a>(&'a mut self, buf: &'a mut [u8]) -> Result<Decoded<'a>, ProtocolError> {
        if self.release_assembled {
            self.release_assembled = false;
            self.assembled.clear();
            if self.assembled.capacity() > KEEP_ASSEMBLY_CAPACITY {
                self.assembled = Vec::new();
            }
        }
        let Some(h) = self.parse_header(buf)? else {
            return Ok(Decoded::Partial);
        };
        // Data frames were bounded by max_message_size and control frames by 125 above.
        let len = usize::try_from(h.payload_len).map_err(|_| ProtocolError::MessageTooBig)?;
        let start = h.len;
        let end = start.checked_add(len).ok_or(ProtocolError::MessageTooBig)?;

        if h.opcode.is_control() {
            // Control payloads are tiny: wait for the whole frame.
            let Some(payload) = buf.get_mut(start..end) else {
                return Ok(Decoded::Partial);
            };
            apply_mask(payload, h.mask, 0);
            let payload: &'a [u8] = payload;
            let msg = match h.opcode {
                OpCode::Ping => Message::Ping(payload),
                OpCode::Pong => Message::Pong(payload),
                _ => parse_close(payload)?,
            };
            return Ok(Decoded::Message(msg, end));
        }

        let compressed = h.compressed
            || (h.opcode == OpCode::Continue && self.deflate == DeflateState::Compressing);
        // A compressed message is validated once inflated, never on the wire bytes.
        let is_text = !compressed
            && (h.opcode == OpCode::Text
                || (h.opcode == OpCode::Continue && self.frag_opcode == Some(OpCode::Text)));
        let avail_end = buf.len().min(end);
        let done = start + self.frame_progress.min(len);
        // A lone, complete, final text frame is validated once by `utf8` below; anything
        // arriving in pieces goes through the incremental validator so bad UTF-8 fails fast.
        let single_shot =
            is_text && h.opcode == OpCode::Text && h.fin && done == start && avail_end == end;
        if let Some(fresh) = buf.get_mut(done..avail_end) {
            apply_mask(fresh, h.mask, done - start);
            if is_text && !single_shot {
                self.utf8
                    .feed(fresh)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            self.frame_progress = avail_end - start;
        }
        if avail_end < end {
            return Ok(Decoded::Partial);
        }
        self.frame_progress = 0;
        let buf: &'a [u8] = buf;
        let payload = buf.get(start..end).unwrap_or_default();

        match h.opcode {
            OpCode::Text | OpCode::Binary if h.fin && compressed => {
                let text = h.opcode == OpCode::Text;
                Ok(Decoded::Message(Message::Deflated { text, payload }, end))
            }
            OpCode::Text | OpCode::Binary if h.fin => {
                if h.opcode == OpCode::Binary {
                    return Ok(Decoded::Message(Message::Binary(payload), end));
                }
                let complete = single_shot || self.utf8.is_complete();
                self.utf8.reset();
                if !complete {
                    return Err(ProtocolError::InvalidUtf8);
                }
                // For pieces already validated this is a second pass, the price of getting a
                // `&str` without `from_utf8_unchecked` (no unsafe in protocol code).
                let text = utf8(payload)?;
                Ok(Decoded::Message(Message::Text(text), end))
            }
            OpCode::Text | OpCode::Binary => {
                self.frag_opcode = Some(h.opcode);
                if compressed {
                    self.deflate = DeflateState::Compressing;
                }
                self.assembled.extend_from_slice(payload);
                Ok(Decoded::Consumed(end))
            }
            _ => {
                self.assembled.extend_from_slice(payload);
                if !h.fin {
                    return Ok(Decoded::Consumed(end));
                }
                let opcode = self.frag_opcode.take();
                self.release_assembled = true;
                if compressed {
                    self.deflate = DeflateState::Plain;
                    let this: &'a Self = self;
                    let text = opcode == Some(OpCode::Text);
                    let payload = &this.assembled[..];
                    return Ok(Decoded::Message(Message::Deflated { text, payload }, end));
                }
                if opcode == Some(OpCode::Text) {
                    let complete = self.utf8.is_complete();
                    self.utf8.reset();
                    if !complete {
                        return Err(ProtocolError::InvalidUtf8);
                    }
                    let this: &'a Self = self;
                    let text = utf8(&this.assembled)?;
                    Ok(Decoded::Message(Message::Text(text), end))
                } else {
                    let this: &'a Self = self;
                    Ok(Decoded::Message(Message::Binary(&this.assembled), end))
                }
            }
        }
    }
}

/// `bytes` as text, or `InvalidUtf8`. simdutf8's `basic` validator gives std's answer (no
/// error position, which nothing here reports) in a fraction of its time on all but the
/// shortest messages, and every text message goes through here.
fn utf8(bytes: &[u8]) -> Result<&str, ProtocolError> {
    simdutf8::basic::from_utf8(bytes).map_err(|_| ProtocolError::InvalidUtf8)
}

/// Inflate a [`Message::Deflated`] with `inflater` into a `Text` (UTF-8 checked) or `Binary`
/// message of at most `limit` bytes; the bound holds while inflating (see [`Inflater`]).
pub fn inflate_message<'a>(
    inflater: &'a mut Inflater,
    text: bool,
    payload: &[u8],
    limit: usize,
) -> Result<Message<'a>, ProtocolError> {
    let bytes = inflater.inflate(payload, limit).map_err(|e| match e {
        InflateError::TooBig => ProtocolError::MessageTooBig,
        InflateError::Corrupt => ProtocolError::BadDeflate,
    })?;
    if !text {
        return Ok(Message::Binary(bytes));
    }
    utf8(bytes).map(Message::Text)
}

/// Interpret a Close payload (§5.5.1): empty, or a valid code plus a UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<Message<'_>, ProtocolError> {
    match payload {
        [] => Ok(Message::Close(None, "")),
        [_] => Err(ProtocolError::BadClosePayload),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) {
                return Err(ProtocolError::BadCloseCode);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Message::Close(Some(code), reason))
        }
    }
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
