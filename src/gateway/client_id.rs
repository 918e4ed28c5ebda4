//! Globally unique client ids.
//!
//! A client id names the worker incarnation that owns the connection and the connection's
//! slab slot and generation, so a send needs no lookup. The incarnation is assigned by the
//! master and never repeats (it starts from the master's start time), so an id kept by a
//! backend after a worker restart or a server restart reaches no one instead of a newcomer.
//! On the wire it is 32 lowercase hex digits: opaque and URL-safe.

use std::fmt;

/// A client anywhere in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    /// Owning worker incarnation.
    pub inc: u64,
    /// Slab slot in that worker.
    pub slot: u32,
    /// Generation of that slot's occupant.
    pub gen: u32,
}

/// Length of the text form.
pub const TEXT_LEN: usize = 32;

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:08x}{:08x}", self.inc, self.slot, self.gen)
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
            slot: u32::from_str_radix(s.get(16..24)?, 16).ok()?,
            gen: u32::from_str_radix(s.get(24..32)?, 16).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejects() {
        let c = ClientId {
            inc: 0x0123_4567_89ab_cdef,
            slot: 7,
            gen: u32::MAX,
        };
        let s = c.to_string();
        assert_eq!(s.len(), TEXT_LEN);
        assert_eq!(ClientId::parse(&s), Some(c));
        assert_eq!(ClientId::parse(&s.to_uppercase()), None);
        assert_eq!(ClientId::parse(&s[1..]), None);
        assert_eq!(ClientId::parse("zz"), None);
        assert_eq!(ClientId::parse(&"é".repeat(16)), None);
    }
}
