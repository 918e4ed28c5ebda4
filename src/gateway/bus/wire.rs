//! The bus codec: typed messages between workers, in a compact binary framing.
//!
//! Frame: `u32` little-endian body length, then a tag byte and the fields. Integers are
//! little-endian; strings and byte strings are a `u32` length and the bytes; lists are a `u32`
//! count and the items. Decoding borrows strings and payloads from the input (no copy on the
//! hot path) and rejects anything malformed with a typed error; it is pure and fuzzed.
//!
//! Connections on the wire are [`ConnId`]s relative to an implicit worker: the sender for
//! state changes (it owns the client), the receiver for deliveries and commands.

use crate::gateway::client_id::ConnId;
use crate::protocol::Payload;
use std::fmt;

/// Largest frame accepted (a message up to the max package size plus headroom).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Message type of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text.
    Text,
    /// Bytes.
    Binary,
}

impl Kind {
    /// Wire kind and bytes of a payload.
    pub fn split(msg: Payload<'_>) -> (Kind, &[u8]) {
        match msg {
            Payload::Text(s) => (Kind::Text, s.as_bytes()),
            Payload::Binary(b) => (Kind::Binary, b),
        }
    }

    /// The payload these bytes carry (text that is not UTF-8 degrades to binary).
    pub fn payload(self, b: &[u8]) -> Payload<'_> {
        match self {
            Kind::Text => match std::str::from_utf8(b) {
                Ok(s) => Payload::Text(s),
                Err(_) => Payload::Binary(b),
            },
            Kind::Binary => Payload::Binary(b),
        }
    }
}

/// One bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusMsg<'a> {
    /// First message on a link: who is speaking.
    Hello {
        /// Sender incarnation.
        inc: u64,
        /// Sender worker slot.
        worker_id: u16,
    },
    /// The sender has a new client.
    Up(ConnId),
    /// The sender's client is gone.
    Down(ConnId),
    /// The sender's client was bound to a uid.
    Bind(ConnId, &'a str),
    /// The sender's client lost its uid.
    Unbind(ConnId),
    /// The sender's client joined a group.
    Join(ConnId, &'a str),
    /// The sender's client left a group.
    Leave(ConnId, &'a str),
    /// The sender's client has this session now (a JSON object).
    Session(ConnId, &'a [u8]),
    /// Deliver to one client of the receiver (the common private-message case, no list).
    ToClient {
        /// Text or binary.
        kind: Kind,
        /// Receiver.
        key: ConnId,
        /// Message.
        payload: &'a [u8],
    },
    /// Deliver to these clients of the receiver.
    ToClients {
        /// Text or binary.
        kind: Kind,
        /// Receivers.
        keys: Vec<ConnId>,
        /// Message.
        payload: &'a [u8],
    },
    /// Deliver to the receiver's members of these groups, once each, except `exclude`.
    ToGroups {
        /// Text or binary.
        kind: Kind,
        /// Groups.
        groups: Vec<&'a str>,
        /// Receiver's clients to skip.
        exclude: Vec<ConnId>,
        /// Message.
        payload: &'a [u8],
    },
    /// Deliver to the receiver's clients bound to these uids.
    ToUids {
        /// Text or binary.
        kind: Kind,
        /// Uids.
        uids: Vec<&'a str>,
        /// Message.
        payload: &'a [u8],
    },
    /// Deliver to all the receiver's clients except `exclude`.
    ToAll {
        /// Text or binary.
        kind: Kind,
        /// Receiver's clients to skip.
        exclude: Vec<ConnId>,
        /// Message.
        payload: &'a [u8],
    },
    /// Ask the owner to add its client to a group.
    CmdJoin(ConnId, &'a str),
    /// Ask the owner to remove its client from a group.
    CmdLeave(ConnId, &'a str),
    /// Ask the owner to bind a uid.
    CmdBind(ConnId, &'a str),
    /// Ask the owner to unbind.
    CmdUnbind(ConnId),
    /// Ask the owner to replace a session (JSON object).
    CmdSetSession(ConnId, &'a [u8]),
    /// Ask the owner to merge into a session (JSON object).
    CmdUpdateSession(ConnId, &'a [u8]),
    /// Ask the owner to close a client, after an optional last message.
    CmdClose(ConnId, Option<(Kind, &'a [u8])>),
    /// Ask the owner to drop a client now.
    CmdDestroy(ConnId),
    /// Every worker removes its clients from this group.
    Ungroup(&'a str),
}

/// Why bytes are not a valid bus frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Declared length over [`MAX_FRAME`].
    TooLarge,
    /// A field runs past the end of its frame.
    Truncated,
    /// Unknown message tag.
    BadTag(u8),
    /// Unknown delivery kind.
    BadKind(u8),
    /// A string field is not UTF-8.
    BadUtf8,
    /// Bytes left in the frame after the last field.
    Trailing,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TooLarge => write!(f, "bus frame too large"),
            WireError::Truncated => write!(f, "bus frame truncated"),
            WireError::BadTag(t) => write!(f, "unknown bus message tag {t}"),
            WireError::BadKind(k) => write!(f, "unknown delivery kind {k}"),
            WireError::BadUtf8 => write!(f, "bus string is not UTF-8"),
            WireError::Trailing => write!(f, "trailing bytes in bus frame"),
        }
    }
}

impl std::error::Error for WireError {}

mod tag {
    pub(super) const HELLO: u8 = 0;
    pub(super) const UP: u8 = 1;
    pub(super) const DOWN: u8 = 2;
    pub(super) const BIND: u8 = 3;
    pub(super) const UNBIND: u8 = 4;
    pub(super) const JOIN: u8 = 5;
    pub(super) const LEAVE: u8 = 6;
    pub(super) const SESSION: u8 = 7;
    pub(super) const TO_CLIENT: u8 = 9;
    pub(super) const TO_CLIENTS: u8 = 10;
    pub(super) const TO_GROUPS: u8 = 11;
    pub(super) const TO_UIDS: u8 = 12;
    pub(super) const TO_ALL: u8 = 13;
    pub(super) const CMD_JOIN: u8 = 20;
    pub(super) const CMD_LEAVE: u8 = 21;
    pub(super) const CMD_BIND: u8 = 22;
    pub(super) const CMD_UNBIND: u8 = 23;
    pub(super) const CMD_SET_SESSION: u8 = 24;
    pub(super) const CMD_UPDATE_SESSION: u8 = 25;
    pub(super) const CMD_CLOSE: u8 = 26;
    pub(super) const CMD_DESTROY: u8 = 27;
    pub(super) const UNGROUP: u8 = 28;
}

/// Whether the whole frame at the start of `frame` (length prefix included) is a delivery
/// (a send to clients, groups, uids or everyone) rather than a change of state or a command:
/// read from the tag alone, without decoding. A worker may hold deliveries to other nodes for
/// the publish window ([`super::hold`]) but never a change of state, which other nodes need
/// before the next send.
pub fn is_delivery(frame: &[u8]) -> bool {
    matches!(
        frame.get(4),
        Some(&(tag::TO_CLIENT | tag::TO_CLIENTS | tag::TO_GROUPS | tag::TO_UIDS | tag::TO_ALL))
    )
}

struct W<'o>(&'o mut Vec<u8>);

impl W<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn key(&mut self, k: ConnId) {
        self.u32(k.slot);
        self.u32(k.gen);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn kind(&mut self, k: Kind) {
        self.u8(match k {
            Kind::Text => 1,
            Kind::Binary => 2,
        });
    }
    fn keys(&mut self, ks: &[ConnId]) {
        self.u32(ks.len() as u32);
        for k in ks {
            self.key(*k);
        }
    }
    fn strs(&mut self, ss: &[&str]) {
        self.u32(ss.len() as u32);
        for s in ss {
            self.bytes(s.as_bytes());
        }
    }
}

/// Append the frame for `m` to `out`.
pub fn encode(m: &BusMsg<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut w = W(out);
    match m {
        BusMsg::Hello { inc, worker_id } => {
            w.u8(tag::HELLO);
            w.0.extend_from_slice(&inc.to_le_bytes());
            w.0.extend_from_slice(&worker_id.to_le_bytes());
        }
        BusMsg::Up(k) => {
            w.u8(tag::UP);
            w.key(*k);
        }
        BusMsg::Down(k) => {
            w.u8(tag::DOWN);
            w.key(*k);
        }
        BusMsg::Bind(k, s) => key_str(&mut w, tag::BIND, *k, s.as_bytes()),
        BusMsg::Unbind(k) => {
            w.u8(tag::UNBIND);
            w.key(*k);
        }
        BusMsg::Join(k, s) => key_str(&mut w, tag::JOIN, *k, s.as_bytes()),
        BusMsg::Leave(k, s) => key_str(&mut w, tag::LEAVE, *k, s.as_bytes()),
        BusMsg::Session(k, b) => key_str(&mut w, tag::SESSION, *k, b),
        BusMsg::ToClient { kind, key, payload } => {
            w.u8(tag::TO_CLIENT);
            w.kind(*kind);
            w.key(*key);
            w.bytes(payload);
        }
        BusMsg::ToClients {
            kind,
            keys,
            payload,
        } => {
            w.u8(tag::TO_CLIENTS);
            w.kind(*kind);
            w.keys(keys);
            w.bytes(payload);
        }
        BusMsg::ToGroups {
            kind,
            groups,
            exclude,
            payload,
        } => {
            w.u8(tag::TO_GROUPS);
            w.kind(*kind);
            w.strs(groups);
            w.keys(exclude);
            w.bytes(payload);
        }
        BusMsg::ToUids {
            kind,
            uids,
            payload,
        } => {
            w.u8(tag::TO_UIDS);
            w.kind(*kind);
            w.strs(uids);
            w.bytes(payload);
        }
        BusMsg::ToAll {
            kind,
            exclude,
            payload,
        } => {
            w.u8(tag::TO_ALL);
            w.kind(*kind);
            w.keys(exclude);
            w.bytes(payload);
        }
        BusMsg::CmdJoin(k, s) => key_str(&mut w, tag::CMD_JOIN, *k, s.as_bytes()),
        BusMsg::CmdLeave(k, s) => key_str(&mut w, tag::CMD_LEAVE, *k, s.as_bytes()),
        BusMsg::CmdBind(k, s) => key_str(&mut w, tag::CMD_BIND, *k, s.as_bytes()),
        BusMsg::CmdUnbind(k) => {
            w.u8(tag::CMD_UNBIND);
            w.key(*k);
        }
        BusMsg::CmdSetSession(k, b) => key_str(&mut w, tag::CMD_SET_SESSION, *k, b),
        BusMsg::CmdUpdateSession(k, b) => key_str(&mut w, tag::CMD_UPDATE_SESSION, *k, b),
        BusMsg::CmdClose(k, last) => {
            w.u8(tag::CMD_CLOSE);
            w.key(*k);
            match last {
                None => w.u8(0),
                Some((kind, b)) => {
                    w.kind(*kind);
                    w.bytes(b);
                }
            }
        }
        BusMsg::CmdDestroy(k) => {
            w.u8(tag::CMD_DESTROY);
            w.key(*k);
        }
        BusMsg::Ungroup(g) => {
            w.u8(tag::UNGROUP);
            w.bytes(g.as_bytes());
        }
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

fn key_str(w: &mut W<'_>, t: u8, k: ConnId, b: &[u8]) {
    w.u8(t);
    w.key(k);
    w.bytes(b);
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.b.get(self.at..end).ok_or(WireError::Truncated)?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn key(&mut self) -> Result<ConnId, WireError> {
        Ok(ConnId {
            slot: self.u32()?,
            gen: self.u32()?,
        })
    }
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError::BadUtf8)
    }
    fn kind_of(v: u8) -> Result<Kind, WireError> {
        match v {
            1 => Ok(Kind::Text),
            2 => Ok(Kind::Binary),
            k => Err(WireError::BadKind(k)),
        }
    }
    fn kind(&mut self) -> Result<Kind, WireError> {
        let v = self.u8()?;
        Self::kind_of(v)
    }
    /// A count, bounded by the bytes left so a forged count cannot make us allocate.
    fn count(&mut self, item_min: usize) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(item_min) > self.b.len() - self.at {
            return Err(WireError::Truncated);
        }
        Ok(n)
    }
    fn keys(&mut self) -> Result<Vec<ConnId>, WireError> {
        let n = self.count(8)?;
        (0..n).map(|_| self.key()).collect()
    }
    fn strs(&mut self) -> Result<Vec<&'a str>, WireError> {
        let n = self.count(4)?;
        (0..n).map(|_| self.str()).collect()
    }
}

/// Decode one frame from the front of `buf`: `Ok(None)` if it is not all there yet.
pub fn decode(buf: &[u8]) -> Result<Option<(BusMsg<'_>, usize)>, WireError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge);
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let mut r = R { b: body, at: 0 };
    let m = match r.u8()? {
        tag::HELLO => {
            let inc = r.take(8)?;
            let w = r.take(2)?;
            let mut i = [0u8; 8];
            i.copy_from_slice(inc);
            BusMsg::Hello {
                inc: u64::from_le_bytes(i),
                worker_id: u16::from_le_bytes([w[0], w[1]]),
            }
        }
        tag::UP => BusMsg::Up(r.key()?),
        tag::DOWN => BusMsg::Down(r.key()?),
        tag::BIND => BusMsg::Bind(r.key()?, r.str()?),
        tag::UNBIND => BusMsg::Unbind(r.key()?),
        tag::JOIN => BusMsg::Join(r.key()?, r.str()?),
        tag::LEAVE => BusMsg::Leave(r.key()?, r.str()?),
        tag::SESSION => BusMsg::Session(r.key()?, r.bytes()?),
        tag::TO_CLIENT => BusMsg::ToClient {
            kind: r.kind()?,
            key: r.key()?,
            payload: r.bytes()?,
        },
        tag::TO_CLIENTS => BusMsg::ToClients {
            kind: r.kind()?,
            keys: r.keys()?,
            payload: r.bytes()?,
        },
        tag::TO_GROUPS => BusMsg::ToGroups {
            kind: r.kind()?,
            groups: r.strs()?,
            exclude: r.keys()?,
            payload: r.bytes()?,
        },
        tag::TO_UIDS => BusMsg::ToUids {
            kind: r.kind()?,
            uids: r.strs()?,
            payload: r.bytes()?,
        },
        tag::TO_ALL => BusMsg::ToAll {
            kind: r.kind()?,
            exclude: r.keys()?,
            payload: r.bytes()?,
        },
        tag::CMD_JOIN => BusMsg::CmdJoin(r.key()?, r.str()?),
        tag::CMD_LEAVE => BusMsg::CmdLeave(r.key()?, r.str()?),
        tag::CMD_BIND => BusMsg::CmdBind(r.key()?, r.str()?),
        tag::CMD_UNBIND => BusMsg::CmdUnbind(r.key()?),
        tag::CMD_SET_SESSION => BusMsg::CmdSetSession(r.key()?, r.bytes()?),
        tag::CMD_UPDATE_SESSION => BusMsg::CmdUpdateSession(r.key()?, r.bytes()?),
        tag::CMD_CLOSE => {
            let k = r.key()?;
            let last = match r.u8()? {
                0 => None,
                v => Some((R::kind_of(v)?, r.bytes()?)),
            };
            BusMsg::CmdClose(k, last)
        }
        tag::CMD_DESTROY => BusMsg::CmdDestroy(r.key()?),
        tag::UNGROUP => BusMsg::Ungroup(r.str()?),
        t => return Err(WireError::BadTag(t)),
    };
    if r.at != body.len() {
        return Err(WireError::Trailing);
    }
    Ok(Some((m, 4 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<BusMsg<'static>> {
        let k = ConnId { slot: 3, gen: 9 };
        vec![
            BusMsg::Hello {
                inc: u64::MAX - 1,
                worker_id: 7,
            },
            BusMsg::Up(k),
            BusMsg::Down(k),
            BusMsg::Bind(k, "uid-1"),
            BusMsg::Unbind(k),
            BusMsg::Join(k, "房间"),
            BusMsg::Leave(k, ""),
            BusMsg::Session(k, b"{\"a\":1}"),
            BusMsg::ToClient {
                kind: Kind::Binary,
                key: k,
                payload: b"one",
            },
            BusMsg::ToClients {
                kind: Kind::Text,
                keys: vec![k, ConnId { slot: 0, gen: 0 }],
                payload: b"hello",
            },
            BusMsg::ToGroups {
                kind: Kind::Binary,
                groups: vec!["a", "b"],
                exclude: vec![k],
                payload: &[0, 1, 2],
            },
            BusMsg::ToUids {
                kind: Kind::Text,
                uids: vec!["u"],
                payload: b"",
            },
            BusMsg::ToAll {
                kind: Kind::Text,
                exclude: vec![],
                payload: b"x",
            },
            BusMsg::CmdJoin(k, "g"),
            BusMsg::CmdLeave(k, "g"),
            BusMsg::CmdBind(k, "u"),
            BusMsg::CmdUnbind(k),
            BusMsg::CmdSetSession(k, b"{}"),
            BusMsg::CmdUpdateSession(k, b"{}"),
            BusMsg::CmdClose(k, None),
            BusMsg::CmdClose(k, Some((Kind::Text, b"bye"))),
            BusMsg::CmdDestroy(k),
            BusMsg::Ungroup("g"),
        ]
    }

    #[test]
    fn roundtrip_every_message_in_one_stream() {
        let mut buf = Vec::new();
        for m in samples() {
            encode(&m, &mut buf);
        }
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((m, n)) = decode(&buf[at..]).unwrap() {
            got.push(m);
            at += n;
        }
        assert_eq!(got, samples());
        assert_eq!(at, buf.len());
    }

    /// Exactly the sends are deliveries, for every message kind the codec has.
    #[test]
    fn deliveries_are_told_by_their_tag() {
        for m in samples() {
            let mut buf = Vec::new();
            encode(&m, &mut buf);
            let send = matches!(
                m,
                BusMsg::ToClient { .. }
                    | BusMsg::ToClients { .. }
                    | BusMsg::ToGroups { .. }
                    | BusMsg::ToUids { .. }
                    | BusMsg::ToAll { .. }
            );
            assert_eq!(is_delivery(&buf), send, "{m:?}");
        }
        assert!(!is_delivery(&[1, 0, 0]));
    }

    #[test]
    fn partial_and_malformed() {
        let mut buf = Vec::new();
        encode(&BusMsg::Join(ConnId { slot: 1, gen: 1 }, "group"), &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Ok(None));
        }
        let mut bad = buf.clone();
        bad[4] = 99;
        assert_eq!(decode(&bad), Err(WireError::BadTag(99)));
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff]), Err(WireError::TooLarge));
        // A count claiming more keys than bytes left.
        let forged = [6, 0, 0, 0, tag::TO_ALL, 1, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(decode(&forged), Err(WireError::Truncated));
        let mut trailing = buf.clone();
        trailing[0] += 1;
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(WireError::Trailing));
    }
}
