//! WebSocket frame opcodes and frame encoding (RFC 6455 §5.2). No I/O here.

use super::mask::apply_mask;

/// Frame opcode (RFC 6455 §5.2, §11.8); reserved values are rejected by the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: continuation of a fragmented message.
    Continue,
    /// 0x1: UTF-8 text.
    Text,
    /// 0x2: binary data.
    Binary,
    /// 0x8: connection close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The 4-bit wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            OpCode::Continue => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Parse a 4-bit wire value; `None` for reserved opcodes 0x3-0x7 and 0xB-0xF.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0x0 => Some(OpCode::Continue),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// Close, Ping and Pong are control frames (§5.5).
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// Largest control-frame payload (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Write byte 1 and the extended length for `len` (§5.2: minimal encoding); returns bytes written.
fn write_len(out: &mut [u8; 10], mask_bit: u8, len: usize) -> usize {
    if len <= 125 {
        out[1] = mask_bit | len as u8;
        2
    } else if let Ok(l16) = u16::try_from(len) {
        out[1] = mask_bit | 126;
        out[2..4].copy_from_slice(&l16.to_be_bytes());
        4
    } else {
        out[1] = mask_bit | 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Header of a server->client frame (FIN set, unmasked) for `len` payload bytes, into `out`;
/// returns header length (2, 4 or 10).
pub fn server_header(opcode: OpCode, len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x80 | opcode.to_u8();
    // §5.1: a server must not mask frames it sends.
    write_len(out, 0, len)
}

/// Append a complete server frame (FIN, unmasked) to `out`.
pub fn encode(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let mut head = [0u8; 10];
    let n = server_header(opcode, payload.len(), &mut head);
    out.reserve(n + payload.len());
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(payload);
}

/// Append a close frame with `code` and `reason` (reason truncated at a char boundary to fit
/// the 125-byte control payload, i.e. 123 bytes after the code).
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    encode(out, OpCode::Close, &payload[..2 + end]);
}

/// Client-side (masked) frame, for tests and load tools: fin flag, opcode, mask key.
pub fn encode_client(out: &mut Vec<u8>, fin: bool, opcode: OpCode, payload: &[u8], mask: [u8; 4]) {
    let mut head = [0u8; 10];
    head[0] = if fin { 0x80 } else { 0 } | opcode.to_u8();
    let n = write_len(&mut head, 0x80, payload.len());
    out.reserve(n + 4 + payload.len());
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_boundaries() {
        let cases: &[(usize, &[u8])] = &[
            (0, &[0x81, 0]),
            (125, &[0x81, 125]),
            (126, &[0x81, 126, 0, 126]),
            (256, &[0x81, 126, 1, 0]),
            (65535, &[0x81, 126, 0xff, 0xff]),
            (65536, &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for (len, want) in cases {
            let mut h = [0u8; 10];
            let n = server_header(OpCode::Text, *len, &mut h);
            assert_eq!(&h[..n], *want, "len {len}");
            let payload = vec![b'x'; *len];
            let mut out = Vec::new();
            encode(&mut out, OpCode::Text, &payload);
            assert_eq!(&out[..n], *want);
            assert_eq!(out.len(), n + len);
        }
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 §5.7.
        let mut out = Vec::new();
        encode(&mut out, OpCode::Text, b"Hello");
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.clear();
        encode_client(
            &mut out,
            true,
            OpCode::Text,
            b"Hello",
            [0x37, 0xfa, 0x21, 0x3d],
        );
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        out.clear();
        encode(&mut out, OpCode::Ping, b"Hello");
        assert_eq!(out, [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.clear();
        encode(&mut out, OpCode::Pong, b"Hello");
        assert_eq!(out[0], 0x8a);
        out.clear();
        encode(&mut out, OpCode::Binary, &[0u8; 256]);
        assert_eq!(&out[..4], &[0x82, 0x7E, 0x01, 0x00]);
        out.clear();
        encode(&mut out, OpCode::Binary, &vec![0u8; 65536]);
        assert_eq!(&out[..10], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        out.clear();
        encode_client(&mut out, false, OpCode::Text, b"Hel", [0; 4]);
        assert_eq!(&out[..2], &[0x01, 0x83]);
    }

    #[test]
    fn close_reason_truncated_on_char_boundary() {
        let mut out = Vec::new();
        encode_close(&mut out, 1000, "bye");
        assert_eq!(out, [0x88, 5, 0x03, 0xe8, b'b', b'y', b'e']);
        // 41 three-byte chars = 123 bytes fit exactly; one more ASCII byte is dropped.
        let reason = format!("{}x", "€".repeat(41));
        out.clear();
        encode_close(&mut out, 1001, &reason);
        assert_eq!(out[1], 125);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
        // A multibyte char straddling byte 123 is dropped whole.
        let reason = format!("a{}", "€".repeat(41));
        out.clear();
        encode_close(&mut out, 1001, &reason);
        assert_eq!(out[1] as usize, 2 + 1 + 40 * 3);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }

    #[test]
    fn opcode_roundtrip() {
        for v in 0u8..16 {
            match OpCode::from_u8(v) {
                Some(op) => assert_eq!(op.to_u8(), v),
                None => assert!(matches!(v, 3..=7 | 11..=15)),
            }
        }
    }
}
