//! A reload's hand-over, as typed records: what a retiring worker sends its successor so the
//! successor carries on with the same clients, ids and links (docs/architecture.md, "Reload").
//!
//! The stream: the successor speaks first with [`Hello`] (the format it reads); the retiring
//! worker answers [`Opening::Refused`] when it cannot write that format (its clients then get
//! 1012 as on any restart), else [`Opening::Begin`]. Then come copies of its connections
//! ([`Record::Conns`], in batches whose sockets ride along: SCM_RIGHTS, in order) and of its
//! registry replica ([`Record::Clients`] chunks), taken while it keeps serving, then
//! [`Record::Synced`]: the successor answers [`Reply::CaughtUp`] once it has read that far,
//! and only then does the retiring worker stop reading its clients and commit: the copies
//! that went stale ([`Record::Update`]), the connections that went away or stay
//! ([`Record::Gone`]), any it could not copy before (more `Conns`), the registry clients that
//! changed since they were copied ([`Record::Changed`]; or [`Record::Reset`] and the whole
//! replica again, when too many did), its bus links ([`Record::Links`]), the app's own state
//! if it carries any ([`Record::App`]), and [`Record::Done`]. Nothing is applied before
//! `Done`: a stream cut short leaves the successor as it was.
//!
//! Framing (`protocol::record`): a `u32` little-endian length, then the frame. [`Hello`] and
//! [`Opening`] are JSON and keep their shape across builds, so any two builds can tell each
//! other apart and refuse cleanly; the records after `Begin` are binary (postcard), read only
//! by a build of the same [`FORMAT`]. Pure code: the worker does the socket I/O.

use crate::connection::handover::ConnRecord;
use crate::gateway::client_id::{ClientId, ConnId};
use crate::gateway::registry::{ClientInfo, Registry};
use crate::protocol::record::{self, RecordError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The format this build writes and reads. Bump it whenever a record changes shape or meaning
/// (the binary records have no field names: any added, removed or reordered field is a new
/// shape). 2: the app's own state ([`Record::App`]). 3: records after `Begin` in postcard.
/// 4: TLS connections move, with their session's keys (`ConnRecord::tls`). 5: the registry is
/// copied ahead too (`Record::Changed`, `Record::Reset`), and the successor says when it has
/// caught up (`Record::Synced`, [`Reply`]).
pub(crate) const FORMAT: u32 = 5;

/// Environment variable that makes a worker claim another format: how a test stands in for a
/// new binary whose records changed (documented in docs/cli.md).
pub(crate) const FORMAT_ENV: &str = "KEFU_HANDOVER_FORMAT";

/// Largest frame accepted (a batch of connections with their unsent bytes).
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// Records of connections per batch: under the 253 descriptors one message may carry.
pub(crate) const BATCH: usize = 250;

/// Bytes of unread and unsent data after which a batch is cut even with fewer connections
/// (slow readers may carry up to `max_send_buffer` each).
pub(crate) const BATCH_BYTES: usize = 4 << 20;

/// The format this process writes and reads: [`FORMAT`] unless [`FORMAT_ENV`] says otherwise.
pub(crate) fn format() -> u32 {
    std::env::var(FORMAT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FORMAT)
}

/// Successor -> retiring worker, the first frame (JSON). Its shape never changes, so any two
/// builds can tell each other apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// The hand-over format the successor reads.
    pub format: u32,
}

/// Retiring worker -> successor, the first frame (JSON). Its shape never changes either (it
/// is format 2's first record), so a successor of another build reads the refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Opening {
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
    /// Session (any JSON the app stored: carried as JSON text).
    #[serde(with = "record::json_text")]
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

/// Retiring worker -> successor, after [`Opening::Begin`] (binary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Record {
    /// A chunk of the registry replica (copied ahead while the retiring worker serves; after
    /// [`Record::Reset`], the replica as it is at the commit).
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
    /// Newer records of connections already sent (by slot; their sockets went with them).
    Update {
        /// The connections.
        conns: Vec<ConnRecord>,
    },
    /// Connections sent before that do not move after all (closed meanwhile, or kept by the
    /// retiring worker): the successor drops its copy of their sockets.
    Gone {
        /// Their slots.
        slots: Vec<u32>,
    },
    /// What the retiring worker's app carries to its successor's (`api::AppState`, kept
    /// opaque here: the app reads it, with its own name and version; JSON text inside).
    App {
        /// The app's record.
        #[serde(with = "record::json_text")]
        state: Value,
    },
    /// Everything was sent.
    Done,
    /// Registry clients that changed since they were copied, as they are at the commit: the
    /// successor forgets what it has of each, then takes them as given here.
    Changed {
        /// Clients no longer present.
        gone: Present,
        /// Clients present now.
        present: Present,
        /// Those of `present` with a uid, groups or a session.
        info: Vec<ClientRecord>,
    },
    /// The registry chunks sent so far are void (too many clients changed while they were
    /// copied for the retiring worker to keep track): the whole replica follows.
    Reset,
    /// Every connection and registry client is copied: the successor answers
    /// [`Reply::CaughtUp`] once it has read up to here.
    Synced,
}

/// Successor -> retiring worker, after [`Opening::Begin`] (binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// Read up to [`Record::Synced`]: the commit will not wait on the successor's backlog, so
    /// the retiring worker may stop serving its clients for it now.
    CaughtUp,
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
    /// A frame is not a record of this format (or is over [`MAX_FRAME`]).
    Frame(RecordError),
    /// A record came without the sockets it names.
    MissingFds,
    /// Records out of order (no `Begin` first, counts that do not add up...).
    Order(&'static str),
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Frame(e) => write!(f, "hand-over {e}"),
            StreamError::MissingFds => f.write_str("hand-over record without its sockets"),
            StreamError::Order(why) => write!(f, "hand-over out of order: {why}"),
        }
    }
}

impl std::error::Error for StreamError {}

impl From<RecordError> for StreamError {
    fn from(e: RecordError) -> Self {
        StreamError::Frame(e)
    }
}

/// Append the binary frame of a record to `out`.
pub(crate) fn encode(msg: &Record, out: &mut Vec<u8>) {
    record::encode(msg, out);
}

/// Append the binary frame of a reply to `out`.
pub(crate) fn encode_reply(msg: Reply, out: &mut Vec<u8>) {
    record::encode(&msg, out);
}

/// The next whole reply at the front of `buf` and the bytes it took, or `Ok(None)` if more
/// bytes are needed.
pub(crate) fn decode_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, StreamError> {
    Ok(record::decode(buf, 64)?)
}

/// Append the JSON frame of a [`Hello`] or an [`Opening`] to `out`.
pub(crate) fn encode_opening<T: Serialize>(msg: &T, out: &mut Vec<u8>) {
    record::encode_json(msg, out);
}

/// The next whole record at the front of `buf` and the bytes it took, or `Ok(None)` if more
/// bytes are needed.
pub(crate) fn decode(buf: &[u8]) -> Result<Option<(Record, usize)>, StreamError> {
    Ok(record::decode(buf, MAX_FRAME)?)
}

/// The next whole [`Hello`] or [`Opening`] at the front of `buf` (JSON).
pub(crate) fn decode_opening<T: for<'de> Deserialize<'de>>(
    buf: &[u8],
) -> Result<Option<(T, usize)>, StreamError> {
    Ok(record::decode_json(buf, MAX_FRAME)?)
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

/// Add `c` to `present` (grouped by incarnation while consecutive ones share it).
fn put(present: &mut Present, c: ClientId) {
    match present.last_mut() {
        Some((inc, v)) if *inc == c.inc => v.push(pack(c)),
        _ => present.push((c.inc, vec![pack(c)])),
    }
}

/// Add `c`, present with `i`, to a record's lists.
fn put_info(present: &mut Present, info: &mut Vec<ClientRecord>, c: ClientId, i: &ClientInfo) {
    put(present, c);
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
}

/// A `Clients` record of those of `ids` present now, as they are now.
pub(crate) fn clients_record(reg: &Registry, ids: &[ClientId]) -> Record {
    let mut present = Vec::new();
    let mut info = Vec::new();
    for &c in ids {
        if let Some(i) = reg.get(c) {
            put_info(&mut present, &mut info, c, i);
        }
    }
    Record::Clients { present, info }
}

/// `Changed` records of at most `chunk` clients each: `changed`, as they are now in `reg`.
pub(crate) fn changed_records(
    reg: &Registry,
    changed: impl IntoIterator<Item = ClientId>,
    chunk: usize,
) -> Vec<Record> {
    let chunk = chunk.max(1);
    let mut out = Vec::new();
    let (mut gone, mut present, mut info) = (Vec::new(), Vec::new(), Vec::new());
    let mut n = 0;
    for c in changed {
        match reg.get(c) {
            Some(i) => put_info(&mut present, &mut info, c, i),
            None => put(&mut gone, c),
        }
        n += 1;
        if n == chunk {
            out.push(Record::Changed {
                gone: std::mem::take(&mut gone),
                present: std::mem::take(&mut present),
                info: std::mem::take(&mut info),
            });
            n = 0;
        }
    }
    if n > 0 {
        out.push(Record::Changed {
            gone,
            present,
            info,
        });
    }
    out
}

/// Apply a `Changed` record to a registry: each client named is forgotten, then those present
/// are taken as given.
pub(crate) fn apply_changed(
    reg: &mut Registry,
    gone: Present,
    present: Present,
    info: Vec<ClientRecord>,
) {
    for (inc, keys) in gone.iter().chain(&present) {
        for &k in keys {
            reg.remove(unpack(*inc, k));
        }
    }
    import_clients(reg, present, info);
}

/// The registry replica as `Clients` records of at most `chunk` clients each.
pub(crate) fn registry_records(reg: &Registry, chunk: usize) -> Vec<Record> {
    let chunk = chunk.max(1);
    let mut out = Vec::new();
    let mut present: Present = Vec::new();
    let mut info = Vec::new();
    let mut n = 0;
    for (c, i) in reg.iter() {
        put_info(&mut present, &mut info, c, i);
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
#[path = "handover_tests.rs"]
mod tests;
