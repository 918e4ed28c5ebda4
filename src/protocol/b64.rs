//! Byte strings in serde formats: base64 text in human-readable ones (JSON arrays of numbers
//! would quadruple them), raw bytes in binary ones (a reload's hand-over records carry a
//! connection's unread and unsent bytes: encoding them would only cost time).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serializer};
use std::fmt;

/// Serialize bytes as standard base64 (human-readable formats) or as bytes.
pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&STANDARD.encode(b))
    } else {
        s.serialize_bytes(b)
    }
}

/// Deserialize standard base64 (human-readable formats) or bytes; anything else is an error.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    if d.is_human_readable() {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD.decode(s.as_bytes()).map_err(D::Error::custom)
    } else {
        d.deserialize_byte_buf(Bytes)
    }
}

/// Bytes from a binary format, however it hands them over.
struct Bytes;

impl<'de> Visitor<'de> for Bytes {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // Only as much room as the input proves, whatever length it claims.
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element()? {
            v.push(b);
        }
        Ok(v)
    }
}
