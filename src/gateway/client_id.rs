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
        write!(
            f,
            "{:016x}{:08x}{:08x}",
            self.inc, self.conn.slot, self.conn.gen
        )
    }
}

impl ClientId {
    /// Parse the text form; anything else is `None`.
    pub fn parse(s: &str) -> Option<ClientId> {
        if s.len() != TEXT_LEN || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        Some(ClientId {
            inc: u64::from_str_radix(s.get(0..16)?, 16).ok()?,
            conn: ConnId {
                slot: u32::from_str_radix(s.get(16..24)?, 16).ok()?,
                gen: u32::from_str_radix(s.get(24..32)?, 16).ok()?,
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
    }
}
