//! A reload's hand-over, as typed records: what a retiring worker sends its successor so the
//! successor carries on with the same clients, ids and links (docs/architecture.md, "Reload").
//!
//! The stream: the successor speaks first with [`Hello`] (the format it reads); the retiring
//! worker answers [`Record::Refused`] when it cannot write that format (its clients then get
//! 1012 as on any restart), else [`Record::Begin`], the registry replica in
//! [`Record::Clients`] chunks, its bus links ([`Record::Links`]) and its connections
//! ([`Record::Conns`]) in batches whose sockets ride along (SCM_RIGHTS, one per record, in
//! order), the app's own state if it carries any ([`Record::App`]), and [`Record::Done`]. Nothing is applied before `Done`: a stream cut short leaves
//! the successor as it was.
//!
//! Framing: a `u32` little-endian length, then the record as JSON. Pure code: the worker
//! does the socket I/O.

use crate::connection::handover::ConnRecord;
use crate::gateway::client_id::{ClientId, ConnId};
use crate::gateway::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The format this build writes and reads. Bump it whenever a record changes shape or meaning.
/// 2: the app's own state ([`Record::App`]). 3: TLS connections move, with their session's
/// keys (`ConnRecord::tls`); a format-2 reader would take them for plain ones.
pub(crate) const FORMAT: u32 = 3;

/// Environment variable that makes a worker claim another format: how a test stands in for a
/// new binary whose records changed (documented in docs/cli.md).
pub(crate) const FORMAT_ENV: &str = "KEFU_HANDOVER_FORMAT";

/// Largest frame accepted (a batch of connections with their unsent bytes).
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// Records of connections per batch: under the 253 descriptors one message may carry.
pub(crate) const BATCH: usize = 250;

/// Bytes of JSON after which a batch is cut even with fewer connections (slow readers may
/// carry up to `max_send_buffer` each).
pub(crate) const BATCH_BYTES: usize = 4 << 20;

/// The format this process writes and reads: [`FORMAT`] unless [`FORMAT_ENV`] says otherwise.
pub(crate) fn format() -> u32 {
    std::env::var(FORMAT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FORMAT)
}

/// Successor -> retiring worker, the first frame. Its shape never changes, so any two builds
/// can tell each other apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// The hand-over format the successor reads.
    pub format: u32,
}

/// Present clients by incarnation, as `slot << 32 | gen` (part of [`Record::Clients`]).
pub(crate) type Present = Vec<(u64, Vec<u64>)>;

/// One client of the registry replica with what it has (clients with nothing are in
/// [`Record::Clients`]'s `present` only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClientRecord {
    /// Owning worker incarnation.
    pub inc: u64,
    /// Slot in that worker.
    pub slot: u32,
    /// Generation.
    pub gen: u32,
    /// Bound uid.
    pub uid: Option<String>,
    /// Groups joined.
    pub groups: Vec<String>,
    /// Session.
    pub session: Map<String, Value>,
}

/// One bus link to another worker (its socket rides along).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LinkRecord {
    /// The peer's incarnation.
    pub inc: u64,
    /// The peer's slot.
    pub worker_id: usize,
    /// Read from the peer, not yet decoded.
    #[serde(with = "crate::protocol::b64")]
    pub unread: Vec<u8>,
    /// Queued for the peer, not yet written.
    #[serde(with = "crate::protocol::b64")]
    pub unsent: Vec<u8>,
}

/// Retiring worker -> successor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Record {
    /// No hand-over: why (the successor starts as a fresh worker).
    Refused {
        /// Why, for the log.
        reason: String,
    },
    /// What follows.
    Begin {
        /// The format of the records after this one.
        format: u32,
        /// The incarnation whose client ids the successor takes on.
        inc: u64,
        /// The next connection generation (so a reused slot never repeats an id).
        next_gen: u32,
        /// Connections that follow.
        conns: usize,
        /// Links that follow.
        links: usize,
    },
    /// A chunk of the registry replica.
    Clients {
        /// Present clients by incarnation.
        present: Present,
        /// Clients with a uid, groups or a session.
        info: Vec<ClientRecord>,
    },
    /// Bus links; one socket per entry, in order.
    Links {
        /// The links.
        links: Vec<LinkRecord>,
    },
    /// Connections; one socket per entry, in order.
    Conns {
        /// The connections.
        conns: Vec<ConnRecord>,
    },
    /// What the retiring worker's app carries to its successor's (`api::AppState`, kept
    /// opaque here: the app reads it, with its own name and version).
    App {
        /// The app's record.
        state: Value,
    },
    /// Everything was sent.
    Done,
}

impl Record {
    /// How many sockets ride along with this record.
    pub(crate) fn fds(&self) -> usize {
        match self {
            Record::Links { links } => links.len(),
            Record::Conns { conns } => conns.len(),
            _ => 0,
        }
    }
}

/// Why a hand-over stream cannot be read.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// A frame declares more than [`MAX_FRAME`].
    TooLarge(usize),
    /// A frame is not a record of this format.
    Json(serde_json::Error),
    /// A record came without the sockets it names.
    MissingFds,
    /// Records out of order (no `Begin` first, counts that do not add up...).
    Order(&'static str),
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::TooLarge(n) => write!(f, "hand-over frame of {n} bytes"),
            StreamError::Json(e) => write!(f, "hand-over record unreadable: {e}"),
            StreamError::MissingFds => f.write_str("hand-over record without its sockets"),
            StreamError::Order(why) => write!(f, "hand-over out of order: {why}"),
        }
    }
}

impl std::error::Error for StreamError {}

/// Append the frame of `msg` to `out`.
pub(crate) fn encode<T: Serialize>(msg: &T, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    // Serializing these plain records cannot fail (string keys only, no custom Serialize).
    let _ = serde_json::to_writer(&mut *out, msg);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// The next whole frame at the front of `buf`: the message and the bytes it took, or
/// `Ok(None)` if more bytes are needed.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
    buf: &[u8],
) -> Result<Option<(T, usize)>, StreamError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_FRAME {
        return Err(StreamError::TooLarge(len));
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let msg = serde_json::from_slice(body).map_err(StreamError::Json)?;
    Ok(Some((msg, 4 + len)))
}

fn pack(c: ClientId) -> u64 {
    (u64::from(c.conn.slot) << 32) | u64::from(c.conn.gen)
}

fn unpack(inc: u64, k: u64) -> ClientId {
    ClientId::new(
        inc,
        ConnId {
            slot: (k >> 32) as u32,
            gen: k as u32,
        },
    )
}

/// The registry replica as `Clients` records of at most `chunk` clients each.
pub(crate) fn registry_records(reg: &Registry, chunk: usize) -> Vec<Record> {
    let chunk = chunk.max(1);
    let mut out = Vec::new();
    let mut present: Present = Vec::new();
    let mut info = Vec::new();
    let mut n = 0;
    for (c, i) in reg.iter() {
        match present.last_mut() {
            Some((inc, v)) if *inc == c.inc => v.push(pack(c)),
            _ => present.push((c.inc, vec![pack(c)])),
        }
        if !i.is_empty() {
            info.push(ClientRecord {
                inc: c.inc,
                slot: c.conn.slot,
                gen: c.conn.gen,
                uid: i.uid.clone(),
                groups: i.groups.clone(),
                session: i.session.clone(),
            });
        }
        n += 1;
        if n == chunk {
            out.push(Record::Clients {
                present: std::mem::take(&mut present),
                info: std::mem::take(&mut info),
            });
            n = 0;
        }
    }
    if n > 0 {
        out.push(Record::Clients { present, info });
    }
    out
}

/// Add a `Clients` record to a registry.
pub(crate) fn import_clients(reg: &mut Registry, present: Present, info: Vec<ClientRecord>) {
    for (inc, keys) in present {
        for k in keys {
            reg.add(unpack(inc, k));
        }
    }
    for r in info {
        let c = ClientId::new(
            r.inc,
            ConnId {
                slot: r.slot,
                gen: r.gen,
            },
        );
        if let Some(u) = &r.uid {
            reg.bind(c, u);
        }
        for g in &r.groups {
            reg.join(c, g);
        }
        if !r.session.is_empty() {
            reg.set_session(c, r.session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(inc: u64, slot: u32, gen: u32) -> ClientId {
        ClientId::new(inc, ConnId { slot, gen })
    }

    #[test]
    fn a_registry_crosses_in_chunks_unchanged() {
        let mut r = Registry::default();
        for inc in [7, 9] {
            for s in 0..10 {
                r.add(c(inc, s, s * 3));
            }
        }
        r.bind(c(7, 1, 3), "u");
        r.join(c(7, 1, 3), "g");
        r.join(c(9, 2, 6), "g");
        r.set_session(
            c(9, 2, 6),
            json!({"k": [1, 2]}).as_object().unwrap().clone(),
        );
        let recs = registry_records(&r, 3);
        assert_eq!(recs.len(), 7);
        let mut wire = Vec::new();
        for rec in &recs {
            encode(rec, &mut wire);
        }
        let mut back = Registry::default();
        let mut at = 0;
        while let Some((rec, n)) = decode::<Record>(&wire[at..]).unwrap() {
            at += n;
            match rec {
                Record::Clients { present, info } => import_clients(&mut back, present, info),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(at, wire.len());
        assert_eq!(back.client_list(), r.client_list());
        assert_eq!(back.group_list("g"), r.group_list("g"));
        assert_eq!(back.uid_clients("u"), vec![c(7, 1, 3)]);
        assert_eq!(back.get(c(9, 2, 6)), r.get(c(9, 2, 6)));
        assert_eq!(back.info_count(), 2);
    }

    #[test]
    fn frames_split_anywhere_and_oversize_is_refused() {
        let mut wire = Vec::new();
        encode(&Hello { format: 3 }, &mut wire);
        for cut in 0..wire.len() {
            assert!(decode::<Hello>(&wire[..cut]).unwrap().is_none());
        }
        assert_eq!(
            decode::<Hello>(&wire).unwrap(),
            Some((Hello { format: 3 }, wire.len()))
        );
        let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(matches!(
            decode::<Hello>(&huge),
            Err(StreamError::TooLarge(_))
        ));
        let mut junk = Vec::new();
        encode(&"not a hello", &mut junk);
        assert!(matches!(decode::<Hello>(&junk), Err(StreamError::Json(_))));
    }
}
