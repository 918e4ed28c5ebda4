//! A reload's hand-over, the successor's side (`handover.rs` has the retiring worker's).
//!
//! The successor says which format it reads before it reports Ready, then (still before its
//! loop runs, so its slab is empty) reads the whole stream. Copies of connections become
//! connections as they arrive, their sockets watched in its poll (so the commit does not pay
//! for it, and bytes that arrive meanwhile raise their events here too); copies of registry
//! clients go into a registry of its own; at `Synced` it tells its predecessor it has caught
//! up. Then come the commit's newer records of some connections, the ones that do not come
//! after all, the registry clients that changed, links and app state. Only at `Done` does it
//! take them over: the predecessor's incarnation, its next generation, its slab slots, links
//! and registry. Client ids, groups, uids and sessions stay as they were, the other workers
//! see no change at all (the bus links are the same sockets, read on from where the
//! predecessor stopped), and the app rebuilds its per-connection state in `App::on_adopt`.

use super::bus_io::{self, Links};
use super::handover::HandOverError;
use super::input::guarded;
use super::read::Reader as ConnReader;
use super::{Base, BUS_BASE};
use crate::api::AppState;
use crate::connection::handover::ConnRecord;
use crate::connection::{Conn, Input};
use crate::gateway::client_id::ConnId;
use crate::gateway::registry::Registry as Clients;
use crate::state::handover::{self as ho, LinkRecord, Opening, Record, Reply, StreamError};
use mio::{Interest, Registry, Token};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// Highest slab slot a connection record may name: more than a process's descriptors can be.
const MAX_SLOT: usize = 1 << 24;
/// Read size on the hand-over socket.
const READ_CHUNK: usize = 256 * 1024;

/// Reads frames with the descriptors that came along.
pub(super) struct Reader<'a> {
    sock: &'a UnixStream,
    /// Bytes received; `buf[at..]` is not decoded yet.
    buf: Vec<u8>,
    at: usize,
    chunk: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(sock: &'a UnixStream) -> Self {
        Reader {
            sock,
            buf: Vec::new(),
            at: 0,
            chunk: vec![0; READ_CHUNK],
            fds: VecDeque::new(),
        }
    }

    /// The next frame as `decode` reads it, receiving more bytes until it is whole.
    pub(super) fn next_with<T>(
        &mut self,
        decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, StreamError>,
    ) -> Result<T, HandOverError> {
        loop {
            if let Some((msg, n)) = decode(&self.buf[self.at..])? {
                self.at += n;
                return Ok(msg);
            }
            // Only a partial frame is left: move it to the front once per receive, not the
            // whole buffer once per frame.
            self.buf.drain(..self.at);
            self.at = 0;
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

/// A connection received, as of its latest record.
enum Arrived {
    /// A connection, its socket in this worker's poll.
    Conn(Conn),
    /// Its record or socket was not usable (why, for the log); its socket is closed here.
    Failed {
        gen: u32,
        app_connected: bool,
        why: String,
    },
}

/// What a successor received, applied only once it is complete.
#[derive(Default)]
pub(super) struct Received {
    /// The incarnation taken on.
    pub(super) inc: u64,
    next_gen: u32,
    /// The registry replica as received so far (copies, then changes).
    clients: Clients,
    links: Vec<(LinkRecord, OwnedFd)>,
    conns: HashMap<u32, Arrived>,
    app: Option<serde_json::Value>,
}

/// Watch a received socket under its slot's token (no event is handled before `Done`). It
/// shares its open file with the predecessor's descriptor, so it is non-blocking already
/// (`O_NONBLOCK` is the file's, and every connection is accepted so).
fn watch(registry: &Registry, slot: u32, fd: OwnedFd) -> std::io::Result<mio::net::TcpStream> {
    let mut s = mio::net::TcpStream::from_std(std::net::TcpStream::from(fd));
    registry.register(
        &mut s,
        Token(slot as usize),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    Ok(s)
}

fn unwatch(registry: &Registry, a: Arrived) {
    if let Arrived::Conn(mut c) = a {
        let _ = registry.deregister(&mut c.stream);
    }
}

/// A connection from its record, on its socket (`max_message`: this worker's limit).
fn arrive(
    registry: &Registry,
    rec: ConnRecord,
    stream: std::io::Result<mio::net::TcpStream>,
    max_message: usize,
) -> Arrived {
    let (gen, app_connected) = (rec.gen, rec.app_connected);
    let why = match stream {
        Ok(s) => match Conn::adopt(rec, s, Instant::now(), max_message) {
            Ok(c) => return Arrived::Conn(c),
            Err((e, mut s)) => {
                let _ = registry.deregister(&mut s);
                e.to_string()
            }
        },
        Err(e) => format!("its socket could not be watched: {e}"),
    };
    Arrived::Failed {
        gen,
        app_connected,
        why,
    }
}

/// Read a whole hand-over (successor side), watching the sockets in `registry` as they come
/// (`max_message`: this worker's message limit). On failure nothing stays watched.
pub(super) fn receive(
    sock: &UnixStream,
    registry: &Registry,
    max_message: usize,
) -> Result<Received, HandOverError> {
    let mut r = Received::default();
    match read_all(sock, registry, max_message, &mut r) {
        Ok(()) => Ok(r),
        Err(e) => {
            for (_, a) in r.conns.drain() {
                unwatch(registry, a);
            }
            Err(e)
        }
    }
}

fn read_all(
    sock: &UnixStream,
    registry: &Registry,
    max_message: usize,
    r: &mut Received,
) -> Result<(), HandOverError> {
    let mut reader = Reader::new(sock);
    match reader.next_with(ho::decode_opening::<Opening>)? {
        Opening::Refused { reason } => return Err(HandOverError::Refused(reason)),
        Opening::Begin {
            format,
            inc,
            next_gen,
            conns,
            ..
        } => {
            if format != ho::format() {
                return Err(HandOverError::Refused(format!(
                    "records of format {format}, this worker reads {}",
                    ho::format()
                )));
            }
            r.inc = inc;
            r.next_gen = next_gen;
            r.conns.reserve(conns.min(MAX_SLOT));
        }
    }
    loop {
        let rec = reader.next_with(ho::decode)?;
        let fds = reader.take_fds(rec.fds())?;
        match rec {
            Record::Conns { conns } => {
                for (rec, fd) in conns.into_iter().zip(fds) {
                    let slot = rec.slot;
                    // The slab is rebuilt at these slots: one far out would make it
                    // allocate up to it, and a slot twice would lose a connection.
                    if slot as usize > MAX_SLOT || r.conns.contains_key(&slot) {
                        return Err(
                            StreamError::Order("a connection slot out of range or twice").into(),
                        );
                    }
                    let stream = watch(registry, slot, fd);
                    r.conns
                        .insert(slot, arrive(registry, rec, stream, max_message));
                }
            }
            Record::Update { conns } => {
                for rec in conns {
                    let slot = rec.slot;
                    let Some(a) = r.conns.remove(&slot) else {
                        return Err(StreamError::Order("an update of a connection not sent").into());
                    };
                    let a = match a {
                        // The same socket, now as the newer record says.
                        Arrived::Conn(c) => arrive(registry, rec, Ok(c.stream), max_message),
                        Arrived::Failed { why, .. } => Arrived::Failed {
                            gen: rec.gen,
                            app_connected: rec.app_connected,
                            why,
                        },
                    };
                    r.conns.insert(slot, a);
                }
            }
            Record::Gone { slots } => {
                for slot in slots {
                    let Some(a) = r.conns.remove(&slot) else {
                        return Err(
                            StreamError::Order("a connection gone that was not sent").into()
                        );
                    };
                    unwatch(registry, a);
                }
            }
            Record::Clients { present, info } => {
                ho::import_clients(&mut r.clients, present, info);
            }
            Record::Changed {
                gone,
                present,
                info,
            } => ho::apply_changed(&mut r.clients, gone, present, info),
            Record::Reset => r.clients = Clients::default(),
            Record::Synced => {
                // The predecessor serves its clients until it reads this, then holds them for
                // its commit.
                let mut buf = Vec::new();
                ho::encode_reply(Reply::CaughtUp, &mut buf);
                super::handover::write_frame(sock, &buf, &[])?;
            }
            Record::Links { links } => r.links.extend(links.into_iter().zip(fds)),
            Record::App { state } => r.app = Some(state),
            Record::Done => return Ok(()),
        }
    }
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
    // The registry is empty before the loop runs (no client, no link yet): take the one
    // received whole.
    b.core.reg = r.clients;
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
        // Writability is asked for when a write leaves bytes queued (`Links::flush`).
        let reg =
            b.poll
                .registry()
                .register(&mut link.sock, Token(BUS_BASE + slot), Interest::READABLE);
        if reg.is_err() {
            bus_io::drop_link(b, slot, "could not be registered");
            continue;
        }
        links.reread(slot);
    }
    let mut adopted: Vec<(usize, Conn)> = Vec::with_capacity(r.conns.len());
    let mut lost = Vec::new();
    for (slot, a) in r.conns {
        match a {
            Arrived::Conn(c) => adopted.push((slot as usize, c)),
            Arrived::Failed {
                gen,
                app_connected,
                why,
            } => {
                crate::warn!(
                    "worker {}: connection {slot} not adopted: {why}",
                    b.core.worker_id
                );
                if app_connected {
                    lost.push(ConnId { slot, gen });
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
    let mut connected = Vec::new();
    for (slot, c) in b.core.conns.iter_mut() {
        let id = ConnId {
            slot: slot as u32,
            gen: c.gen,
        };
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
        // Bytes that arrived since the socket was watched raise their events; input read
        // but not decoded yet is decoded next turn.
        if !c.in_buf.is_empty() || c.input == Input::Resumed {
            reader.reread(id);
        }
    }
    // Deadlines are checked at once and re-armed from the carried state.
    let slots: Vec<usize> = b.core.conns.iter().map(|(s, _)| s).collect();
    for slot in slots {
        b.core.arm_conn_timer(slot, now);
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
