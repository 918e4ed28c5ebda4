//! A reload's hand-over, the worker side (`state/handover.rs` has the records).
//!
//! Retiring: on `HandOver` the worker stops accepting and stops reading its clients (their
//! bytes wait in the kernel), keeps its bus and its app running until the app has settled
//! (`App::settled`, bounded by [`SETTLE`]), then sends the registry replica, its bus links and
//! every connection to the successor in one go and exits. An HTTP answer its app is still
//! preparing stays with it. If the successor cannot read its records, its clients get 1012
//! as on any restart.
//!
//! Successor: it says which format it reads before it reports Ready, then (still before its
//! loop runs, so its slab is empty) takes the records over: the predecessor's incarnation,
//! its next generation, its slab slots, links and registry. Client ids, groups, uids and
//! sessions stay as they were, the other workers see no change at all (the bus links are the
//! same sockets, read on from where the predecessor stopped), and the app rebuilds its
//! per-connection state in `App::on_adopt`.

use super::bus_io::{self, Links};
use super::input::guarded;
use super::read::Reader as ConnReader;
use super::{close, Base, BUS_BASE};
use crate::api::AppState;
use crate::connection::handover::ConnRecord;
use crate::connection::Conn;
use crate::gateway::client_id::ConnId;
use crate::state::handover::{self as ho, ClientRecord, Hello, LinkRecord, Record, StreamError};
use mio::{Interest, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Longest a retiring worker waits for its app to settle before moving its clients anyway.
pub(super) const SETTLE: Duration = Duration::from_secs(2);
/// Longest one blocking read or write on the hand-over socket may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients per registry record.
const CLIENT_CHUNK: usize = 10_000;
/// Highest slab slot a connection record may name: more than a process's descriptors can be.
const MAX_SLOT: usize = 1 << 24;
/// Read size on the hand-over socket.
const READ_CHUNK: usize = 256 * 1024;

/// Why a hand-over did not happen.
#[derive(Debug)]
pub(super) enum HandOverError {
    /// The other side cannot read this side's format (or said no).
    Refused(String),
    /// The socket failed or timed out.
    Io(io::Error),
    /// The stream is not a valid hand-over.
    Stream(StreamError),
    /// The other side hung up first.
    Closed,
}

impl fmt::Display for HandOverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandOverError::Refused(why) => write!(f, "refused: {why}"),
            HandOverError::Io(e) => write!(f, "hand-over socket: {e}"),
            HandOverError::Stream(e) => write!(f, "{e}"),
            HandOverError::Closed => f.write_str("the other side hung up"),
        }
    }
}

impl From<io::Error> for HandOverError {
    fn from(e: io::Error) -> Self {
        HandOverError::Io(e)
    }
}

impl From<StreamError> for HandOverError {
    fn from(e: StreamError) -> Self {
        HandOverError::Stream(e)
    }
}

/// Blocking use of the hand-over socket: the retiring worker serves nobody while it sends,
/// the successor nobody yet while it receives, and both are bounded by [`IO_TIMEOUT`].
fn blocking(sock: &UnixStream) -> io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))
}

/// Write one frame, the descriptors riding on its first byte.
fn write_frame<T: serde::Serialize>(
    sock: &UnixStream,
    msg: &T,
    fds: &[RawFd],
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    buf.clear();
    ho::encode(msg, buf);
    let mut at = 0;
    for chunk in fds.chunks(crate::sys::fdpass::MAX_FDS) {
        // Each descriptor batch needs a byte of its own to ride on.
        let sent = crate::sys::fdpass::send_with_fds(sock, &buf[at..at + 1], chunk)?;
        at += sent;
    }
    (&*sock).write_all(&buf[at..])
}

/// Reads frames with the descriptors that came along.
struct Reader<'a> {
    sock: &'a UnixStream,
    buf: Vec<u8>,
    chunk: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

impl<'a> Reader<'a> {
    fn new(sock: &'a UnixStream) -> Self {
        Reader {
            sock,
            buf: Vec::new(),
            chunk: vec![0; READ_CHUNK],
            fds: VecDeque::new(),
        }
    }

    fn next<T: for<'de> serde::Deserialize<'de>>(&mut self) -> Result<T, HandOverError> {
        loop {
            if let Some((msg, n)) = ho::decode::<T>(&self.buf)? {
                self.buf.drain(..n);
                return Ok(msg);
            }
            let mut got = Vec::new();
            let n = crate::sys::fdpass::recv_with_fds(self.sock, &mut self.chunk, &mut got)?;
            self.fds.extend(got);
            if n == 0 {
                return Err(HandOverError::Closed);
            }
            self.buf.extend_from_slice(&self.chunk[..n]);
        }
    }

    fn take_fds(&mut self, n: usize) -> Result<Vec<OwnedFd>, HandOverError> {
        if self.fds.len() < n {
            return Err(StreamError::MissingFds.into());
        }
        Ok(self.fds.drain(..n).collect())
    }
}

/// What a successor received, applied only once it is complete.
#[derive(Default)]
pub(super) struct Received {
    /// The incarnation taken on.
    pub(super) inc: u64,
    next_gen: u32,
    clients: Vec<(ho::Present, Vec<ClientRecord>)>,
    links: Vec<(LinkRecord, OwnedFd)>,
    conns: Vec<(ConnRecord, OwnedFd)>,
    app: Option<serde_json::Value>,
}

/// Retiring: send everything to the successor on `sock`; returns the slots of the
/// connections and links that went (still open here until [`forget_moved`]).
pub(super) fn send_all(
    b: &mut Base,
    sock: &UnixStream,
) -> Result<(Vec<usize>, Vec<usize>), HandOverError> {
    blocking(sock)?;
    let mut reader = Reader::new(sock);
    let hello: Hello = reader.next()?;
    let mine = ho::format();
    let mut buf = Vec::new();
    if hello.format != mine {
        let reason = format!(
            "the new worker reads hand-over format {} and this one writes format {mine}",
            hello.format
        );
        let refused = Record::Refused {
            reason: reason.clone(),
        };
        let _ = write_frame(sock, &refused, &[], &mut buf);
        return Err(HandOverError::Refused(reason));
    }
    // The app's last word to the connections it still holds, and its memory for the next.
    let state = guarded(&mut b.core, None, "hand_over", |cx| b.app.hand_over(cx))
        .flatten()
        .and_then(|s| serde_json::to_value(s).ok());
    let core = &b.core;
    let conns: Vec<usize> = core
        .conns
        .iter()
        .filter(|(_, c)| c.movable())
        .map(|(s, _)| s)
        .collect();
    let links: Vec<usize> = core.bus.links.iter().map(|(s, _)| s).collect();
    let begin = Record::Begin {
        format: mine,
        inc: core.inc,
        next_gen: core.next_gen,
        conns: conns.len(),
        links: links.len(),
    };
    write_frame(sock, &begin, &[], &mut buf)?;
    for rec in ho::registry_records(&core.reg, CLIENT_CHUNK) {
        write_frame(sock, &rec, &[], &mut buf)?;
    }
    for batch in links.chunks(ho::BATCH) {
        let mut recs = Vec::with_capacity(batch.len());
        let mut fds = Vec::with_capacity(batch.len());
        for &slot in batch {
            let Some(l) = core.bus.links.get(slot) else {
                continue;
            };
            recs.push(LinkRecord {
                inc: l.inc,
                worker_id: l.worker_id,
                unread: l.inbuf.clone(),
                unsent: l.out.pending_bytes(&[]),
            });
            fds.push(l.sock.as_raw_fd());
        }
        write_frame(sock, &Record::Links { links: recs }, &fds, &mut buf)?;
    }
    let now = core.now;
    let mut recs = Vec::new();
    let mut fds = Vec::new();
    let mut bytes = 0;
    for &slot in &conns {
        let Some(c) = core.conns.get(slot) else {
            continue;
        };
        let r = c.record(slot, &core.fanout, now);
        bytes += r.unread.len() + r.unsent.len();
        recs.push(r);
        fds.push(c.stream.as_raw_fd());
        if recs.len() == ho::BATCH || bytes >= ho::BATCH_BYTES {
            let conns = std::mem::take(&mut recs);
            write_frame(sock, &Record::Conns { conns }, &fds, &mut buf)?;
            fds.clear();
            bytes = 0;
        }
    }
    if !recs.is_empty() {
        write_frame(sock, &Record::Conns { conns: recs }, &fds, &mut buf)?;
    }
    if let Some(state) = state {
        write_frame(sock, &Record::App { state }, &[], &mut buf)?;
    }
    write_frame(sock, &Record::Done, &[], &mut buf)?;
    Ok((conns, links))
}

/// Retiring, after [`send_all`]: the moved connections and links are the successor's now.
/// Drop this process's descriptors of them (the sockets stay open in the successor) without
/// any close frame, any `on_close` or any `Down`.
pub(super) fn forget_moved(b: &mut Base, conns: &[usize], links: &[usize]) {
    for &slot in conns {
        close::drop_conn(b, slot);
    }
    let core = &mut b.core;
    core.dirty.retain(|&s| core.conns.contains(s));
    for &slot in links {
        if let Some(mut l) = core.bus.remove_link(slot) {
            let _ = b.poll.registry().deregister(&mut l.sock);
        }
    }
}

/// Successor, before Ready: say which format it reads.
pub(super) fn greet(sock: &UnixStream) -> io::Result<()> {
    blocking(sock)?;
    let hello = Hello {
        format: ho::format(),
    };
    write_frame(sock, &hello, &[], &mut Vec::new())
}

/// Successor: apply a complete hand-over before the loop runs; returns the connections
/// adopted.
pub(super) fn install(
    b: &mut Base,
    reader: &mut ConnReader,
    links: &mut Links,
    r: Received,
) -> usize {
    let now = Instant::now();
    b.core.now = now;
    b.core.inc = r.inc;
    b.core.bus.set_inc(r.inc);
    b.core.next_gen = r.next_gen;
    for (present, info) in r.clients {
        ho::import_clients(&mut b.core.reg, present, info);
    }
    for (rec, fd) in r.links {
        let std_sock = UnixStream::from(fd);
        if std_sock.set_nonblocking(true).is_err() {
            continue;
        }
        let sock = mio::net::UnixStream::from_std(std_sock);
        let slot = b
            .core
            .bus
            .adopt_link(rec.inc, rec.worker_id, sock, rec.unread, &rec.unsent);
        let Some(link) = b.core.bus.links.get_mut(slot) else {
            continue;
        };
        let reg = b.poll.registry().register(
            &mut link.sock,
            Token(BUS_BASE + slot),
            Interest::READABLE | Interest::WRITABLE,
        );
        if reg.is_err() {
            bus_io::drop_link(b, slot, "could not be registered");
            continue;
        }
        links.reread(slot);
    }
    let max_message = b.core.limits.max_package_size;
    let mut adopted: Vec<(usize, Conn)> = Vec::with_capacity(r.conns.len());
    let mut taken = std::collections::HashSet::with_capacity(r.conns.len());
    let mut lost = Vec::new();
    for (rec, fd) in r.conns {
        let (slot, gen, connected) = (rec.slot as usize, rec.gen, rec.app_connected);
        // The slab is rebuilt at these slots: one far out would make it allocate up to it,
        // and a slot twice would drop a connection silently.
        if slot > MAX_SLOT || !taken.insert(slot) {
            crate::warn!(
                "worker {}: connection record with slot {slot} refused (out of range or twice)",
                b.core.worker_id
            );
            if connected {
                lost.push(ConnId {
                    slot: slot as u32,
                    gen,
                });
            }
            continue;
        }
        let std_stream = std::net::TcpStream::from(fd);
        let conn = std_stream
            .set_nonblocking(true)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                let s = mio::net::TcpStream::from_std(std_stream);
                Conn::adopt(rec, s, now, max_message).map_err(|e| e.to_string())
            });
        match conn {
            Ok(c) => adopted.push((slot, c)),
            Err(e) => {
                crate::warn!(
                    "worker {}: connection {slot} not adopted: {e}",
                    b.core.worker_id
                );
                if connected {
                    lost.push(ConnId {
                        slot: slot as u32,
                        gen,
                    });
                }
            }
        }
    }
    // The slab is empty (the loop has not run): the predecessor's slots are taken as they
    // were, so every id stays valid.
    b.core.conns = adopted.into_iter().collect::<Slab<Conn>>();
    for id in lost {
        // Its socket went with the record that failed: tell everyone it is gone.
        b.core.local_down(id);
    }
    let slots: Vec<(usize, u32)> = b.core.conns.iter().map(|(s, c)| (s, c.gen)).collect();
    let mut connected = Vec::new();
    for (slot, gen) in slots {
        let id = ConnId {
            slot: slot as u32,
            gen,
        };
        let Some(c) = b.core.conns.get_mut(slot) else {
            continue;
        };
        let reg = b.poll.registry().register(
            &mut c.stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        );
        if reg.is_err() {
            let was = c.app_connected;
            b.core.conns.remove(slot);
            if was {
                b.core.local_down(id);
            }
            continue;
        }
        // Counted like an accepted connection; over the cap or not, it is already here.
        let _ = b.peers.admit(c.remote.ip());
        b.buffered_input += c.in_buf.capacity();
        if let Some(t) = &mut c.tls {
            // What the session brought (a partial record, decrypted bytes) counts as it
            // did in the predecessor.
            b.buffered_input += t.recount().1;
        }
        if c.app_connected {
            connected.push(id);
        }
        if c.has_output() {
            c.in_dirty = true;
            b.core.dirty.push(slot);
        }
        // Deadlines are checked at once and re-armed from the carried state; bytes that
        // arrived during the hand-over are read next turn.
        b.core.arm_conn_timer(slot, now);
        reader.reread(id);
    }
    for id in connected {
        let cid = b.core.client_id(id);
        guarded(&mut b.core, Some(id), "on_adopt", |cx| {
            b.app.on_adopt(cx, cid)
        });
    }
    if let Some(state) = r.app {
        match serde_json::from_value::<AppState>(state) {
            Ok(s) => {
                guarded(&mut b.core, None, "take_over", |cx| b.app.take_over(cx, s));
            }
            Err(e) => crate::warn!(
                "worker {}: the app's carried state is unreadable ({e}); the app starts afresh",
                b.core.worker_id
            ),
        }
    }
    b.core.conns.len()
}

/// Read a whole hand-over (successor side).
pub(super) fn receive(sock: &UnixStream) -> Result<Received, HandOverError> {
    let mut reader = Reader::new(sock);
    let mut r = Received::default();
    let (want_conns, want_links) = match reader.next::<Record>()? {
        Record::Refused { reason } => return Err(HandOverError::Refused(reason)),
        Record::Begin {
            format,
            inc,
            next_gen,
            conns,
            links,
        } => {
            if format != ho::format() {
                return Err(HandOverError::Refused(format!(
                    "records of format {format}, this worker reads {}",
                    ho::format()
                )));
            }
            r.inc = inc;
            r.next_gen = next_gen;
            (conns, links)
        }
        _ => return Err(StreamError::Order("no Begin first").into()),
    };
    loop {
        let rec: Record = reader.next()?;
        let fds = reader.take_fds(rec.fds())?;
        match rec {
            Record::Clients { present, info } => r.clients.push((present, info)),
            Record::Links { links } => r.links.extend(links.into_iter().zip(fds)),
            Record::Conns { conns } => r.conns.extend(conns.into_iter().zip(fds)),
            Record::App { state } => r.app = Some(state),
            Record::Done => break,
            Record::Begin { .. } | Record::Refused { .. } => {
                return Err(StreamError::Order("a second Begin").into())
            }
        }
    }
    if r.conns.len() != want_conns || r.links.len() != want_links {
        return Err(StreamError::Order("counts differ from Begin").into());
    }
    Ok(r)
}
