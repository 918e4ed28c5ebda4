//! Length-prefixed records between two kefu processes (a reload's hand-over): a `u32`
//! little-endian length, then the record in a compact binary serde encoding (postcard) or,
//! for the few frames whose shape must be readable by any build, JSON.
//!
//! Binary records are not self-describing: a reader decodes with the types of its own build,
//! so the stream that carries them must say its format version first (in a JSON frame) and a
//! reader of another version must refuse it rather than guess. For the same reason the types
//! written this way avoid what needs a self-describing format: internally tagged or untagged
//! enums, `flatten`, `skip_serializing_if` and `serde_json::Value` (carry such data as JSON
//! text with [`json_text`]).

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;

/// Bytes of the length prefix.
pub const HEAD: usize = 4;

/// Why a frame cannot be read.
#[derive(Debug)]
pub enum RecordError {
    /// The frame declares more than the reader's limit.
    TooLarge(usize),
    /// The body is not a binary record of the expected type (truncated, garbage, trailing
    /// bytes, another version's shape).
    Binary(postcard::Error),
    /// A whole binary record and then more bytes in the same frame.
    Trailing(usize),
    /// The body is not a JSON record of the expected type.
    Json(serde_json::Error),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::TooLarge(n) => write!(f, "frame of {n} bytes"),
            RecordError::Binary(e) => write!(f, "record unreadable: {e}"),
            RecordError::Trailing(n) => write!(f, "{n} bytes after the record in its frame"),
            RecordError::Json(e) => write!(f, "record unreadable: {e}"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Append the length prefix of the body that `write` appends to `out`.
fn framed(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; HEAD]);
    write(out);
    let len = u32::try_from(out.len() - at - HEAD).unwrap_or(u32::MAX);
    out[at..at + HEAD].copy_from_slice(&len.to_le_bytes());
}

/// Append the binary frame of `msg` to `out`.
pub fn encode<T: Serialize>(msg: &T, out: &mut Vec<u8>) {
    framed(out, |out| {
        // Serializing into a growing Vec only fails for a type postcard cannot write at all
        // (a map of unknown length), which the record types do not contain; the bytes
        // written so far stay framed and the reader refuses them.
        let _ = postcard::to_io(msg, &mut *out);
    });
}

/// Append the JSON frame of `msg` to `out`.
pub fn encode_json<T: Serialize>(msg: &T, out: &mut Vec<u8>) {
    framed(out, |out| {
        // Plain records with string keys: writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, msg);
    });
}

/// The body of the whole frame at the front of `buf`, and the bytes the frame takes;
/// `Ok(None)` if more bytes are needed.
pub fn body(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, RecordError> {
    let Some(head) = buf.first_chunk::<HEAD>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*head) as usize;
    if len > max {
        return Err(RecordError::TooLarge(len));
    }
    Ok(buf.get(HEAD..HEAD + len).map(|b| (b, HEAD + len)))
}

/// The binary record at the front of `buf` and the bytes it took, or `Ok(None)` if more
/// bytes are needed. A body with bytes left over after the record is refused: every record
/// has exactly one encoding.
pub fn decode<T: DeserializeOwned>(
    buf: &[u8],
    max: usize,
) -> Result<Option<(T, usize)>, RecordError> {
    let Some((body, n)) = body(buf, max)? else {
        return Ok(None);
    };
    let (msg, rest) = postcard::take_from_bytes(body).map_err(RecordError::Binary)?;
    if !rest.is_empty() {
        return Err(RecordError::Trailing(rest.len()));
    }
    Ok(Some((msg, n)))
}

/// The JSON record at the front of `buf` and the bytes it took, or `Ok(None)` if more bytes
/// are needed.
pub fn decode_json<T: DeserializeOwned>(
    buf: &[u8],
    max: usize,
) -> Result<Option<(T, usize)>, RecordError> {
    let Some((body, n)) = body(buf, max)? else {
        return Ok(None);
    };
    let msg = serde_json::from_slice(body).map_err(RecordError::Json)?;
    Ok(Some((msg, n)))
}

/// A field carried as JSON text inside a binary record (`#[serde(with = ...)]`): for data a
/// non-self-describing format cannot hold, such as `serde_json::Value` and maps of it.
pub mod json_text {
    use serde::de::{DeserializeOwned, Error as _};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serialize `v` as a string of its JSON.
    pub fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(v).map_err(<S::Error as serde::ser::Error>::custom)?;
        s.serialize_str(&text)
    }

    /// Deserialize a string of JSON into `T`; text that is not `T` is an error.
    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        serde_json::from_str(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Msg {
        Empty,
        Pair { a: u64, b: String },
        Bytes(#[serde(with = "crate::protocol::b64")] Vec<u8>),
        Json(#[serde(with = "json_text")] serde_json::Value),
    }

    fn samples() -> Vec<Msg> {
        vec![
            Msg::Empty,
            Msg::Pair {
                a: u64::MAX,
                b: "héllo".into(),
            },
            Msg::Bytes((0..=255).collect()),
            Msg::Json(serde_json::json!({"k": [1, "x", null]})),
        ]
    }

    #[test]
    fn binary_frames_round_trip_and_split_anywhere() {
        let mut wire = Vec::new();
        for m in samples() {
            encode(&m, &mut wire);
        }
        let mut at = 0;
        let mut back = Vec::new();
        while let Some((m, n)) = decode::<Msg>(&wire[at..], 1 << 20).unwrap() {
            // Every proper prefix of a frame asks for more, never fails or panics.
            for cut in at..at + n {
                assert!(decode::<Msg>(&wire[at..cut], 1 << 20).unwrap().is_none());
            }
            back.push(m);
            at += n;
        }
        assert_eq!(at, wire.len());
        assert_eq!(back, samples());
    }

    #[test]
    fn bad_bodies_are_typed_errors() {
        // A frame whose body is cut short (the length says 1 byte: a tag without its fields).
        let mut short = Vec::new();
        encode(
            &Msg::Pair {
                a: 1,
                b: "x".into(),
            },
            &mut short,
        );
        let body = short[HEAD..].to_vec();
        for cut in 0..body.len() {
            let mut f = (cut as u32).to_le_bytes().to_vec();
            f.extend_from_slice(&body[..cut]);
            assert!(matches!(
                decode::<Msg>(&f, 1 << 20),
                Err(RecordError::Binary(_))
            ));
        }
        // Trailing bytes after a whole record.
        let mut f = ((body.len() + 1) as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&body);
        f.push(0);
        assert!(matches!(
            decode::<Msg>(&f, 1 << 20),
            Err(RecordError::Trailing(1))
        ));
        // An unknown variant, and JSON text that is not JSON.
        let f = [1, 0, 0, 0, 9];
        assert!(matches!(
            decode::<Msg>(&f, 1 << 20),
            Err(RecordError::Binary(_))
        ));
        let f = [4, 0, 0, 0, 3, 2, b'{', b'x'];
        assert!(matches!(
            decode::<Msg>(&f, 1 << 20),
            Err(RecordError::Binary(_))
        ));
        // Over the limit: refused from the prefix alone.
        assert!(matches!(
            decode::<Msg>(&[0, 0, 1, 0], 1000),
            Err(RecordError::TooLarge(65536))
        ));
    }

    #[test]
    fn json_frames_round_trip() {
        let mut wire = Vec::new();
        encode_json(&serde_json::json!({"format": 3}), &mut wire);
        let (v, n) = decode_json::<serde_json::Value>(&wire, 100)
            .unwrap()
            .unwrap();
        assert_eq!(n, wire.len());
        assert_eq!(v["format"], 3);
        assert!(matches!(
            decode_json::<u32>(&wire, 100),
            Err(RecordError::Json(_))
        ));
    }
}
