//! Minimal RFC 6455 client: upgrade request/response and frame codec (masked out, unmasked in).

use base64::Engine;
use sha1::{Digest, Sha1};
use std::fmt;

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest upgrade response we accept before calling it broken.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Frame opcodes we care about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// Continuation of a fragmented message.
    Continuation,
    /// UTF-8 text message.
    Text,
    /// Binary message.
    Binary,
    /// Close control frame.
    Close,
    /// Ping control frame.
    Ping,
    /// Pong control frame.
    Pong,
}

impl Opcode {
    fn from_bits(b: u8) -> Option<Opcode> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }
}

/// Protocol violations seen on the client side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// The server did not answer with `101 Switching Protocols`.
    BadStatus(String),
    /// The accept header is missing or does not match our key.
    BadAccept,
    /// The response head exceeded the size limit.
    HeadTooLarge,
    /// Reserved opcode or bits, or a malformed control frame.
    BadFrame(&'static str),
    /// A frame larger than the configured limit.
    FrameTooLarge(u64),
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::BadStatus(s) => write!(f, "handshake status: {s}"),
            WsError::BadAccept => f.write_str("handshake: bad Sec-WebSocket-Accept"),
            WsError::HeadTooLarge => f.write_str("handshake: response head too large"),
            WsError::BadFrame(why) => write!(f, "bad frame: {why}"),
            WsError::FrameTooLarge(n) => write!(f, "frame too large: {n} bytes"),
        }
    }
}

impl std::error::Error for WsError {}

/// Fresh random `Sec-WebSocket-Key` value.
pub fn new_key(rng: &mut Rng) -> String {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    raw[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The accept value the server must return for `key`.
pub fn accept_for(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// `Sec-WebSocket-Extensions` to offer, from `KEFU_LOAD_WS_EXTENSIONS` (e.g.
/// `permessage-deflate`), so the idle-memory run can measure connections that agreed on
/// compression without a flag in every scenario.
fn offered_extensions() -> &'static str {
    static EXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    EXT.get_or_init(|| {
        std::env::var("KEFU_LOAD_WS_EXTENSIONS")
            .ok()
            .filter(|v| !v.is_empty() && !v.contains(['\r', '\n']))
            .map(|v| format!("Sec-WebSocket-Extensions: {v}\r\n"))
            .unwrap_or_default()
    })
}

/// Appends the HTTP upgrade request to `out`.
pub fn write_upgrade_request(out: &mut Vec<u8>, host: &str, path: &str, key: &str) {
    let ext = offered_extensions();
    out.extend_from_slice(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}User-Agent: kefu-load\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// Checks a buffered upgrade response: `Ok(None)` if incomplete, `Ok(Some(n))` with the head
/// length when valid (bytes after it are already frames).
pub fn parse_upgrade_response(buf: &[u8], key: &str) -> Result<Option<usize>, WsError> {
    let Some(end) = find_head_end(buf) else {
        return if buf.len() > MAX_RESPONSE_HEAD {
            Err(WsError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let mut parts = status.split_whitespace();
    let (proto, code) = (parts.next(), parts.next());
    if !matches!(proto, Some(p) if p.starts_with("HTTP/1.")) || code != Some("101") {
        return Err(WsError::BadStatus(status.chars().take(80).collect()));
    }
    let want = accept_for(key);
    let ok = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == want
        })
    });
    if ok {
        Ok(Some(end + 4))
    } else {
        Err(WsError::BadAccept)
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Appends one masked, final client frame carrying `payload` to `out`.
pub fn write_frame(out: &mut Vec<u8>, op: Opcode, payload: &[u8], mask: u32) {
    let len = payload.len();
    out.push(0x80 | op.bits());
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let key = mask.to_ne_bytes();
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key);
}

/// XORs `data` with the repeating 4-byte `key`, eight bytes at a time where possible.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    // Eight is a multiple of four, so the tail starts at key offset 0.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// One decoded frame header; the payload is `buf[payload_start..payload_start + len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// FIN bit.
    pub fin: bool,
    /// Frame opcode.
    pub op: Opcode,
    /// Offset of the payload within the parsed slice.
    pub payload_start: usize,
    /// Payload length.
    pub len: usize,
    /// Masking key if the server (wrongly, but harmlessly) masked the frame.
    pub mask: Option<[u8; 4]>,
}

impl FrameHead {
    /// Total bytes the frame occupies, header included.
    pub fn total(&self) -> usize {
        self.payload_start + self.len
    }
}

/// Parses one frame header from `buf`; `Ok(None)` when the whole frame is not buffered yet.
pub fn parse_frame(buf: &[u8], max_len: usize) -> Result<Option<FrameHead>, WsError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(WsError::BadFrame("reserved bits set"));
    }
    let op = Opcode::from_bits(b0 & 0x0F).ok_or(WsError::BadFrame("reserved opcode"))?;
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    let mut pos = 2;
    let len = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            pos = 4;
            u16::from_be_bytes([buf[2], buf[3]]) as u64
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            pos = 10;
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            u64::from_be_bytes(b)
        }
        n => n as u64,
    };
    if matches!(op, Opcode::Close | Opcode::Ping | Opcode::Pong) && (len > 125 || !fin) {
        return Err(WsError::BadFrame("oversized or fragmented control frame"));
    }
    if len > max_len as u64 {
        return Err(WsError::FrameTooLarge(len));
    }
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        let k = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(k)
    } else {
        None
    };
    let len = len as usize;
    if buf.len() < pos + len {
        return Ok(None);
    }
    Ok(Some(FrameHead {
        fin,
        op,
        payload_start: pos,
        len,
        mask,
    }))
}

/// Small xorshift64* generator: masks, keys and random targets need speed, not cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds from the clock and a caller-chosen salt (e.g. the thread index).
    pub fn new(salt: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        let mut r = Rng((t ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
        r.next_u64();
        r
    }

    /// Next pseudo-random 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish value in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_matches_rfc_example() {
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frame_roundtrip_with_mask() {
        for len in [0usize, 5, 125, 126, 1000, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut out = Vec::new();
            write_frame(&mut out, Opcode::Binary, &payload, 0xA1B2_C3D4);
            let h = parse_frame(&out, 1 << 20).unwrap().unwrap();
            assert_eq!(h.op, Opcode::Binary);
            assert!(h.fin);
            assert_eq!(h.len, len);
            assert_eq!(h.total(), out.len());
            let mut p = out[h.payload_start..].to_vec();
            apply_mask(&mut p, h.mask.unwrap());
            assert_eq!(p, payload);
            assert_eq!(parse_frame(&out[..out.len() - 1], 1 << 20), Ok(None));
        }
    }

    #[test]
    fn upgrade_response_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi";
        assert_eq!(parse_upgrade_response(ok, key), Ok(Some(ok.len() - 4)));
        assert_eq!(parse_upgrade_response(&ok[..20], key), Ok(None));
        let bad = b"HTTP/1.1 400 Bad Request\r\n\r\n";
        assert!(matches!(
            parse_upgrade_response(bad, key),
            Err(WsError::BadStatus(_))
        ));
        let wrong = b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert_eq!(parse_upgrade_response(wrong, key), Err(WsError::BadAccept));
    }
}
