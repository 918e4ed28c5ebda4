//! Connection ids and globally unique client ids.
//!
//! [`ConnId`] names a connection inside one worker (its slab slot and the generation of the
//! slot's occupant); the bus carries it as it is. [`ClientId`] adds the worker incarnation
//! that owns the connection, so a send anywhere in the cluster needs no lookup. The incarnation is assigned by the
//! master and never repeats (it starts from the master's start time), so an id kept by a
//! backend after a worker restart or a server restart reaches no one instead of a newcomer.
//! On the wire it is 32 lowercase hex digits: opaque and URL-safe.

use std::fmt;

/// A connection within one worker: slab slot plus generation, so a stale id never reaches a
/// newcomer that took the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// Slab slot.
    pub slot: u32,
    /// Generation of the slot's occupant.
    pub gen: u32,
}

impl ConnId {
    /// The slab index.
    pub fn index(self) -> usize {
        self.slot as usize
    }
}

/// A client anywhere in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    /// Owning worker incarnation.
    pub inc: u64,
    /// The connection in that worker.
    pub conn: ConnId,
}

impl ClientId {
    /// The client `conn` of worker `inc`.
    pub fn new(inc: u64, conn: ConnId) -> ClientId {
        ClientId { inc, conn }
    }
}

/// Length of the text form.
pub const TEXT_LEN: usize = 32;

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand rather than `{:016x}`: every chat message carries an id or two, and the
        // formatting machinery cost more than the rest of building the message.
        f.write_str(self.text().as_str())
    }
}

/// A client id's text form on the stack: what `to_string` gives, without the allocation.
#[derive(Debug, Clone, Copy)]
pub struct IdText([u8; TEXT_LEN]);

impl IdText {
    /// The 32 hex digits.
    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII: this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl ClientId {
    /// The text form (as `Display` writes it) in a stack buffer.
    pub fn text(self) -> IdText {
        let mut out = [0u8; TEXT_LEN];
        hex_into(&mut out[..16], self.inc);
        hex_into(&mut out[16..24], u64::from(self.conn.slot));
        hex_into(&mut out[24..], u64::from(self.conn.gen));
        IdText(out)
    }
}

/// Writes the low `out.len()` hex digits of `v` (lower case) into `out`.
fn hex_into(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// The value of lower-case hex digits (at most 16); `None` on any other byte.
fn hex_value(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(d))
    })
}

impl ClientId {
    /// Parse the text form; anything else is `None`.
    pub fn parse(s: &str) -> Option<ClientId> {
        let b = s.as_bytes();
        if b.len() != TEXT_LEN {
            return None;
        }
        Some(ClientId {
            inc: hex_value(&b[..16])?,
            conn: ConnId {
                slot: u32::try_from(hex_value(&b[16..24])?).ok()?,
                gen: u32::try_from(hex_value(&b[24..])?).ok()?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejects() {
        let c = ClientId::new(
            0x0123_4567_89ab_cdef,
            ConnId {
                slot: 7,
                gen: u32::MAX,
            },
        );
        let s = c.to_string();
        assert_eq!(s.len(), TEXT_LEN);
        assert_eq!(ClientId::parse(&s), Some(c));
        assert_eq!(ClientId::parse(&s.to_uppercase()), None);
        assert_eq!(ClientId::parse(&s[1..]), None);
        assert_eq!(ClientId::parse("zz"), None);
        assert_eq!(ClientId::parse(&"é".repeat(16)), None);
        assert_eq!(
            ClientId::parse(&"0".repeat(TEXT_LEN)),
            Some(ClientId::new(0, ConnId { slot: 0, gen: 0 }))
        );
        let max = ClientId::new(
            u64::MAX,
            ConnId {
                slot: u32::MAX,
                gen: u32::MAX,
            },
        );
        assert_eq!(max.to_string(), "f".repeat(TEXT_LEN));
        assert_eq!(ClientId::parse(&max.to_string()), Some(max));
        assert_eq!(
            ClientId::parse(&format!("{}g", "0".repeat(TEXT_LEN - 1))),
            None
        );
        assert_eq!(
            ClientId::parse(&format!("+{}", "0".repeat(TEXT_LEN - 1))),
            None
        );
    }
}
