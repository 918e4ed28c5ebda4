//! GatewayWorker's 20-hex-digit client ids for kefu's clients, when `[gatewayworker]` is on:
//! `bin2hex(pack('NnN', lan_ip, inner_port, connection_no))`, the layout GatewayClient parses
//! to find the gateway to call.
//!
//! The connection number is derived from the [`ClientId`] (its generation, offset by a mix of
//! the worker's incarnation), so every worker of the node, and the HTTP API on any of them,
//! converts between the two forms without asking the owner: the inner port names the worker
//! (`start_port + worker slot`), and the generation names the connection within it. The
//! generation counter of a worker never repeats until 2^32 connections (a reload's successor
//! continues it), and the incarnation offset makes a restarted worker's numbers start
//! elsewhere, so an id a backend kept from before a restart is unlikely to name a newcomer.

use super::client_id::ClientId;
use std::fmt::Write;

/// Text length of a GatewayWorker client id.
pub const GW_TEXT_LEN: usize = 20;

/// This node's GatewayWorker id layout: its lan IP and first inner port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GwIds {
    /// GatewayWorker's `lanIp` as a big-endian u32 (`ip2long`).
    pub lan_ip: u32,
    /// GatewayWorker's `startPort`: worker N listens on `start_port + N`.
    pub start_port: u16,
}

/// Where an id of this layout points: a worker slot of this node and a connection number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GwAddr {
    /// The worker slot (inner port - `start_port`).
    pub worker: usize,
    /// GatewayWorker's connection id.
    pub no: u32,
}

/// Why a 20-digit id does not name a client of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GwIdError {
    /// Not 20 lowercase hex digits.
    Malformed,
    /// Another host's gateway (its lan IP is not ours).
    OtherHost,
    /// A port below `start_port`.
    NotAnInnerPort,
}

/// The incarnation's offset of connection numbers (odd multiplier: a bijection on u32).
fn offset(inc: u64) -> u32 {
    ((inc ^ (inc >> 32)) as u32).wrapping_mul(0x9e37_79b9)
}

/// GatewayWorker's connection number of `c` (0 is never handed out: see [`usable`]).
pub fn conn_no(c: ClientId) -> u32 {
    c.conn.gen.wrapping_add(offset(c.inc))
}

/// The generation of the connection numbered `no` in worker incarnation `inc`.
pub fn gen_of(inc: u64, no: u32) -> u32 {
    no.wrapping_sub(offset(inc))
}

/// Whether `c` may be given a GatewayWorker id: number 0 means "no client" to GatewayWorker's
/// libraries (one connection in 2^32 is refused for it).
pub fn usable(c: ClientId) -> bool {
    conn_no(c) != 0
}

impl GwIds {
    /// The text id of connection `no` of worker slot `worker`; `None` if its port would
    /// pass 65535.
    pub fn text(&self, worker: usize, no: u32) -> Option<String> {
        let port = u16::try_from(worker)
            .ok()
            .and_then(|w| self.start_port.checked_add(w))?;
        let mut s = String::with_capacity(GW_TEXT_LEN);
        let _ = write!(s, "{:08x}{port:04x}{no:08x}", self.lan_ip);
        Some(s)
    }

    /// Parse a 20-digit id of this node.
    pub fn parse(&self, s: &str) -> Result<GwAddr, GwIdError> {
        let b = s.as_bytes();
        let hex = |r: std::ops::Range<usize>| -> Result<u32, GwIdError> {
            let part = b.get(r).ok_or(GwIdError::Malformed)?;
            if !part.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(GwIdError::Malformed);
            }
            let text = std::str::from_utf8(part).map_err(|_| GwIdError::Malformed)?;
            u32::from_str_radix(text, 16).map_err(|_| GwIdError::Malformed)
        };
        if b.len() != GW_TEXT_LEN {
            return Err(GwIdError::Malformed);
        }
        let (ip, port, no) = (hex(0..8)?, hex(8..12)?, hex(12..20)?);
        if ip != self.lan_ip {
            return Err(GwIdError::OtherHost);
        }
        let worker = port
            .checked_sub(u32::from(self.start_port))
            .ok_or(GwIdError::NotAnInnerPort)?;
        Ok(GwAddr {
            worker: worker as usize,
            no,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::client_id::ConnId;

    const IDS: GwIds = GwIds {
        lan_ip: 0x7f00_0001,
        start_port: 2300,
    };

    #[test]
    fn text_and_back() {
        let c = ClientId::new(0x1234_5678_9abc, ConnId { slot: 3, gen: 41 });
        let no = conn_no(c);
        let t = IDS.text(2, no).unwrap();
        assert_eq!(t.len(), GW_TEXT_LEN);
        assert_eq!(&t[..12], "7f00000108fe");
        let a = IDS.parse(&t).unwrap();
        assert_eq!(a, GwAddr { worker: 2, no });
        assert_eq!(gen_of(c.inc, a.no), 41);
    }

    #[test]
    fn numbers_differ_across_incarnations_and_never_repeat_within_one() {
        let gen = |inc, gen| conn_no(ClientId::new(inc, ConnId { slot: 0, gen }));
        assert_ne!(gen(1, 0), gen(2, 0));
        let mut seen = std::collections::HashSet::new();
        assert!((0..10_000).all(|g| seen.insert(gen(7, g))));
    }

    #[test]
    fn refusals() {
        assert_eq!(IDS.parse("7f00000108fc0000000"), Err(GwIdError::Malformed));
        assert_eq!(IDS.parse("7F00000108fc00000001"), Err(GwIdError::Malformed));
        assert_eq!(IDS.parse("+f00000108fc00000001"), Err(GwIdError::Malformed));
        assert_eq!(IDS.parse("7f00000208fc00000001"), Err(GwIdError::OtherHost));
        assert_eq!(
            IDS.parse("7f00000108fb00000001"),
            Err(GwIdError::NotAnInnerPort)
        );
        assert_eq!(IDS.text(70_000, 1), None);
        assert!(IDS.parse("7f000001ffff00000001").is_ok());
    }
}
