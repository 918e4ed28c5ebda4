//! The frames relays exchange through Redis: one pub/sub message is a batch of bus frames from
//! one node to another.
//!
//! Batch: a version byte, the sender's node id (`u8`), its epoch (`u64`), the batch sequence
//! number for this destination (`u64`), then records until the end. Record: the sending
//! worker's incarnation (`u64`) and slot (`u16`), the receiving worker's incarnation (`u64`),
//! and one bus frame exactly as the worker wrote it (its `u32` length prefix included), so the
//! receiving relay copies it to the worker's link untouched. Integers are little-endian.
//! Decoding is pure and borrows the frames; anything malformed is a typed error.

use crate::gateway::bus::wire::MAX_FRAME;
use std::fmt;

/// Format version in the first byte.
pub const VERSION: u8 = 1;
/// Bytes before the first record.
pub const HEADER_LEN: usize = 1 + 1 + 8 + 8;
/// Bytes of a record before its bus frame.
pub const RECORD_HEAD: usize = 8 + 2 + 8;

/// Who sent a batch, and where it stands in that sender's stream to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Sending node.
    pub node: u8,
    /// The sending node's epoch: it grows each time the node had to resynchronise.
    pub epoch: u64,
    /// Position of this batch in the sender's stream to the receiving node.
    pub seq: u64,
}

/// One bus frame between two workers of different nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Sending worker's incarnation.
    pub from: u64,
    /// Sending worker's slot on its node.
    pub from_worker: u16,
    /// Receiving worker's incarnation.
    pub to: u64,
    /// The bus frame, length prefix included.
    pub frame: &'a [u8],
}

/// Why a batch is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// Shorter than the header.
    Short,
    /// Unknown format version.
    Version(u8),
    /// A record or its frame runs past the end.
    Truncated,
    /// A frame declares more than the bus accepts.
    TooLarge,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Short => write!(f, "cluster batch shorter than its header"),
            BatchError::Version(v) => write!(f, "unknown cluster batch version {v}"),
            BatchError::Truncated => write!(f, "cluster batch record truncated"),
            BatchError::TooLarge => write!(f, "cluster batch frame too large"),
        }
    }
}

impl std::error::Error for BatchError {}

/// Start a batch in `out` (cleared first).
pub fn begin(out: &mut Vec<u8>, h: Header) {
    out.clear();
    out.push(VERSION);
    out.push(h.node);
    out.extend_from_slice(&h.epoch.to_le_bytes());
    out.extend_from_slice(&h.seq.to_le_bytes());
}

/// Overwrite the sequence number of a batch begun with [`begin`].
pub fn set_seq(batch: &mut [u8], seq: u64) {
    if let Some(b) = batch.get_mut(10..18) {
        b.copy_from_slice(&seq.to_le_bytes());
    }
}

/// Append one record.
pub fn push(out: &mut Vec<u8>, from: u64, from_worker: u16, to: u64, frame: &[u8]) {
    out.extend_from_slice(&from.to_le_bytes());
    out.extend_from_slice(&from_worker.to_le_bytes());
    out.extend_from_slice(&to.to_le_bytes());
    out.extend_from_slice(frame);
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The header of a batch and an iterator over its records.
pub fn decode(b: &[u8]) -> Result<(Header, Records<'_>), BatchError> {
    if b.len() < HEADER_LEN {
        return Err(BatchError::Short);
    }
    if b[0] != VERSION {
        return Err(BatchError::Version(b[0]));
    }
    let h = Header {
        node: b[1],
        epoch: u64_at(b, 2).ok_or(BatchError::Short)?,
        seq: u64_at(b, 10).ok_or(BatchError::Short)?,
    };
    Ok((
        h,
        Records {
            rest: &b[HEADER_LEN..],
        },
    ))
}

/// Records of a batch, in order; stops after the first error.
#[derive(Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = self.rest;
        let res = (|| {
            let from = u64_at(r, 0).ok_or(BatchError::Truncated)?;
            let w = r.get(8..10).ok_or(BatchError::Truncated)?;
            let to = u64_at(r, 10).ok_or(BatchError::Truncated)?;
            let len = frame_len(r.get(RECORD_HEAD..).ok_or(BatchError::Truncated)?)?
                .ok_or(BatchError::Truncated)?;
            let frame = r
                .get(RECORD_HEAD..RECORD_HEAD + len)
                .ok_or(BatchError::Truncated)?;
            Ok((
                Record {
                    from,
                    from_worker: u16::from_le_bytes([w[0], w[1]]),
                    to,
                    frame,
                },
                RECORD_HEAD + len,
            ))
        })();
        match res {
            Ok((rec, used)) => {
                self.rest = &r[used..];
                Some(Ok(rec))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Length of the bus frame at the start of `b` (prefix included): `None` if the prefix is
/// not all there yet, an error if it declares more than the bus accepts.
pub fn frame_len(b: &[u8]) -> Result<Option<usize>, BatchError> {
    let Some(p) = b.get(0..4) else {
        return Ok(None);
    };
    let body = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
    if body > MAX_FRAME {
        return Err(BatchError::TooLarge);
    }
    Ok(Some(4 + body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::bus::wire::{self as bus, BusMsg, Kind};
    use crate::gateway::client_id::ConnId;

    #[test]
    fn roundtrip_and_errors() {
        let k = ConnId { slot: 3, gen: 9 };
        let mut f1 = Vec::new();
        bus::encode(
            &BusMsg::ToClient {
                kind: Kind::Text,
                key: k,
                payload: b"hi",
            },
            &mut f1,
        );
        let mut f2 = Vec::new();
        bus::encode(&BusMsg::Up(k), &mut f2);
        let h = Header {
            node: 2,
            epoch: 77,
            seq: 1,
        };
        let mut b = Vec::new();
        begin(&mut b, h);
        push(&mut b, 10, 1, 20, &f1);
        push(&mut b, 11, 2, 21, &f2);
        set_seq(&mut b, 5);
        let (got, recs) = decode(&b).unwrap();
        assert_eq!(got, Header { seq: 5, ..h });
        let recs: Vec<_> = recs.collect::<Result<_, _>>().unwrap();
        assert_eq!(
            recs,
            vec![
                Record {
                    from: 10,
                    from_worker: 1,
                    to: 20,
                    frame: &f1
                },
                Record {
                    from: 11,
                    from_worker: 2,
                    to: 21,
                    frame: &f2
                },
            ]
        );
        // Every cut of the batch is a clean error or a shorter list, never a panic.
        for cut in 0..b.len() {
            match decode(&b[..cut]) {
                Err(e) => assert_eq!(e, BatchError::Short),
                Ok((_, recs)) => {
                    let v: Vec<_> = recs.collect();
                    assert!(v.len() <= 2);
                    if cut < b.len() && cut > HEADER_LEN {
                        assert!(
                            v.last().unwrap().is_err()
                                || v.len() == 1 && cut == HEADER_LEN + RECORD_HEAD + f1.len()
                        );
                    }
                }
            }
        }
        b[0] = 9;
        assert_eq!(decode(&b).unwrap_err(), BatchError::Version(9));
        let mut big = Vec::new();
        begin(&mut big, h);
        push(&mut big, 1, 0, 2, &(u32::MAX).to_le_bytes());
        let (_, mut recs) = decode(&big).unwrap();
        assert_eq!(recs.next(), Some(Err(BatchError::TooLarge)));
        assert_eq!(recs.next(), None);
    }
}
