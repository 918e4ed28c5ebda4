//! A reload's hand-over, the retiring worker's side (`state/handover.rs` has the records,
//! `adopt.rs` the successor's side).
//!
//! On `HandOver` the worker stops accepting and answers the successor's `Hello`. Then it
//! copies its connections and its registry replica to the successor a bounded batch per loop
//! turn ([`Outgoing::advance`]) while it goes on serving every client: reading, delivering,
//! writing; the registry records which of its clients change from then on
//! (`Registry::track`). Once all is copied it says so (`Synced`) and serves on until the
//! successor has read that far (`CaughtUp`, or [`CATCH_UP`] at most): a successor short of
//! CPU may still be a whole copy behind, and the commit would otherwise wait for it with every
//! client held. Then it stops reading its clients (their bytes wait in the kernel), keeps its
//! bus and its app running until the app has settled (`App::settled`, bounded by [`SETTLE`])
//! and commits ([`Outgoing::commit`]): newer records of the copies that changed meanwhile (a
//! few, for clients that were busy), the ones that went away, the registry clients that
//! changed since they were copied, its bus links and the app's state; then it exits. The
//! clients stop being served only for the commit, not for the copy of every connection or
//! client. An HTTP answer its app is still preparing stays with it. If the successor cannot
//! read its records, its clients get 1012 as on any restart.

use super::input::guarded;
use super::{close, Base};
use crate::connection::handover::{ConnRecord, Mark};
use crate::gateway::changes::Changes;
use crate::gateway::client_id::ClientId;
use crate::state::handover::{self as ho, Hello, LinkRecord, Opening, Record, Reply, StreamError};
use mio::unix::SourceFd;
use mio::{Interest, Token};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Longest a retiring worker waits for its app to settle before moving its clients anyway.
pub(super) const SETTLE: Duration = Duration::from_secs(2);
/// Longest a retiring worker serves on after its copy, waiting for the successor to read it,
/// before it commits anyway (the successor then reads the rest with the clients held).
pub(super) const CATCH_UP: Duration = Duration::from_secs(5);
/// Longest one blocking read or write on the hand-over socket may take.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients per registry record at the commit.
const CLIENT_CHUNK: usize = 10_000;
/// Connections copied per loop turn: what the clients' service pays per turn while the
/// copy runs (a few milliseconds), against the number of turns the copy takes.
const COPY_STEP: usize = 1000;
/// Registry clients per record copied ahead; a turn copies [`CLIENT_STEPS`] of them at most
/// (a client without a uid, group or session is a few bytes).
const CLIENT_AHEAD: usize = 5000;
/// Clients with a uid, groups or a session per record copied ahead (a session may hold up
/// to `MAX_SESSION` bytes).
const INFO_AHEAD: usize = 256;
/// Registry records copied per loop turn.
const CLIENT_STEPS: usize = 2;
/// Most registry clients recorded as changed while the replica is copied ahead (besides the
/// replica's size): past it, the commit sends the whole replica again.
const MAX_CHANGES: usize = 1 << 16;

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

/// Blocking use of the hand-over socket, bounded by [`IO_TIMEOUT`]: the successor's whole
/// receipt (it serves nobody yet) and the retiring worker's opening and commit.
pub(super) fn blocking(sock: &UnixStream) -> io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))
}

/// Write one encoded frame on a blocking socket; the descriptors ride on its first bytes (one
/// byte per batch of [`MAX_FDS`](crate::sys::fdpass::MAX_FDS), the last batch with the rest
/// of the frame).
pub(super) fn write_frame(sock: &UnixStream, frame: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut at = 0;
    let batches = fds.len().div_ceil(crate::sys::fdpass::MAX_FDS);
    for (i, chunk) in fds.chunks(crate::sys::fdpass::MAX_FDS).enumerate() {
        let end = if i + 1 == batches {
            frame.len()
        } else {
            at + 1
        };
        at += crate::sys::fdpass::send_with_fds(sock, &frame[at..end], chunk)?;
    }
    (&*sock).write_all(&frame[at..])
}

/// Encode `rec` into `buf` and write it with its descriptors (blocking).
fn send(sock: &UnixStream, rec: &Record, fds: &[RawFd], buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    ho::encode(rec, buf);
    write_frame(sock, buf, fds)
}

/// Where a retiring worker's hand-over is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Copying connections, then registry clients, a bounded share per turn.
    Copying,
    /// All copied and `Synced` sent: serving on until the successor answers, or `until`.
    CatchingUp { until: Instant },
    /// The clients' reads are held: the commit goes once the app has settled, or at `until`.
    Settling { until: Instant },
}

/// What the worker does after a step of the hand-over ([`Outgoing::advance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Nothing more this turn.
    Wait,
    /// Everything is copied: look again at `until` if the successor has not answered by then.
    Synced(Instant),
    /// Hold the clients' reads now; commit once the app has settled, at `until` at the latest.
    Settle(Instant),
}

/// A retiring worker's hand-over under way.
pub(super) struct Outgoing {
    sock: UnixStream,
    /// Movable connections not copied yet, by slot (taken from the end: lowest first).
    todo: Vec<usize>,
    /// Connections copied, by slot, with their mark at the time.
    copied: HashMap<usize, Mark>,
    /// Registry clients not copied yet: who was present when the hand-over began (those that
    /// came since are among the registry's recorded changes).
    clients: Vec<ClientId>,
    /// Registry clients copied ahead.
    clients_copied: usize,
    /// The frame being written without blocking, from `at` on (its descriptors went with its
    /// first bytes).
    frame: Vec<u8>,
    at: usize,
    /// The socket took the last write whole (else wait for its writable event).
    writable: bool,
    /// The socket may have bytes of the successor's to read.
    readable: bool,
    /// The successor's replies read so far.
    replies: Vec<u8>,
    phase: Phase,
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("todo", &self.todo.len())
            .field("copied", &self.copied.len())
            .field("clients", &self.clients.len())
            .field("phase", &self.phase)
            .finish()
    }
}

impl Outgoing {
    /// Read the successor's `Hello` on `sock` and open the stream (`Begin`), or refuse it
    /// (`Refused`) when the successor reads another format. The socket is registered under
    /// `token` for the copy that follows.
    pub(super) fn start(
        b: &mut Base,
        sock: UnixStream,
        token: Token,
    ) -> Result<Outgoing, HandOverError> {
        blocking(&sock)?;
        // The successor wrote its Hello before it reported Ready: it is there to read.
        let hello = super::adopt::Reader::new(&sock).next_with(ho::decode_opening::<Hello>)?;
        let mine = ho::format();
        let mut buf = Vec::new();
        if hello.format != mine {
            let reason = format!(
                "the new worker reads hand-over format {} and this one writes format {mine}",
                hello.format
            );
            let refused = Opening::Refused {
                reason: reason.clone(),
            };
            ho::encode_opening(&refused, &mut buf);
            let _ = write_frame(&sock, &buf, &[]);
            return Err(HandOverError::Refused(reason));
        }
        // From here on the registry records which clients change: those are sent again at the
        // commit, the others only once, from the copy below.
        let cap = MAX_CHANGES.max(b.core.reg.client_count());
        b.core.reg.track(cap);
        let core = &b.core;
        let clients: Vec<ClientId> = core.reg.clients().collect();
        let mut todo: Vec<usize> = core
            .conns
            .iter()
            .filter(|(_, c)| c.copies_ahead())
            .map(|(s, _)| s)
            .collect();
        todo.reverse();
        let begin = Opening::Begin {
            format: mine,
            inc: core.inc,
            next_gen: core.next_gen,
            conns: todo.len(),
            links: core.bus.links.len(),
        };
        ho::encode_opening(&begin, &mut buf);
        write_frame(&sock, &buf, &[])?;
        sock.set_nonblocking(true)?;
        b.poll.registry().register(
            &mut SourceFd(&sock.as_raw_fd()),
            token,
            Interest::WRITABLE | Interest::READABLE,
        )?;
        Ok(Outgoing {
            sock,
            copied: HashMap::with_capacity(todo.len()),
            todo,
            clients,
            clients_copied: 0,
            at: buf.len(),
            frame: buf,
            writable: true,
            readable: false,
            replies: Vec::new(),
            phase: Phase::Copying,
        })
    }

    /// The hand-over has work it can do now (the loop then polls without waiting).
    pub(super) fn busy(&self) -> bool {
        self.writable && (self.phase == Phase::Copying || self.at < self.frame.len())
    }

    /// The socket is ready: it can take bytes again, or the successor wrote (or hung up).
    pub(super) fn on_event(&mut self, readable: bool, writable: bool) {
        self.readable |= readable;
        self.writable |= writable;
    }

    /// Until when the app may settle, once the clients' reads are held.
    pub(super) fn settle_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Settling { until } => Some(until),
            Phase::Copying | Phase::CatchingUp { .. } => None,
        }
    }

    /// What was copied ahead: connections and registry clients.
    pub(super) fn copied_ahead(&self) -> (usize, usize) {
        (self.copied.len(), self.clients_copied)
    }

    /// One turn's share of the hand-over before the commit: copy the next batch, or say that
    /// all is copied, or see whether the successor has caught up (it may also have hung up:
    /// an error). Never waits on the socket.
    pub(super) fn advance(&mut self, b: &Base, now: Instant) -> Result<Next, HandOverError> {
        match self.phase {
            Phase::Copying => {
                if !self.copy(b)? {
                    return Ok(Next::Wait);
                }
                self.frame.clear();
                ho::encode(&Record::Synced, &mut self.frame);
                self.at = 0;
                self.pump()?;
                let until = now + CATCH_UP;
                self.phase = Phase::CatchingUp { until };
                Ok(Next::Synced(until))
            }
            Phase::CatchingUp { until } => {
                self.pump()?;
                if !self.caught_up()? && now < until {
                    return Ok(Next::Wait);
                }
                let until = now + SETTLE;
                self.phase = Phase::Settling { until };
                Ok(Next::Settle(until))
            }
            Phase::Settling { .. } => {
                // Only a hang-up can come now; the commit's blocking writes will see it.
                Ok(Next::Wait)
            }
        }
    }

    /// Whether the successor said it has read up to `Synced` (reads what it wrote, if the
    /// socket said there was something).
    fn caught_up(&mut self) -> Result<bool, HandOverError> {
        let mut buf = [0u8; 64];
        while self.readable {
            match (&self.sock).read(&mut buf) {
                Ok(0) => return Err(HandOverError::Closed),
                Ok(n) => {
                    self.replies.extend_from_slice(&buf[..n]);
                    // A successor writes one reply; more than a few of them is not one.
                    if self.replies.len() > 4 * buf.len() {
                        return Err(StreamError::Order("too many replies").into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) => return Err(e.into()),
            }
        }
        match ho::decode_reply(&self.replies)? {
            Some((Reply::CaughtUp, _)) => Ok(true),
            None => Ok(false),
        }
    }

    /// Write what is left of the frame in flight; false if the socket is full.
    fn pump(&mut self) -> Result<bool, HandOverError> {
        while self.at < self.frame.len() {
            match (&self.sock).write(&self.frame[self.at..]) {
                Ok(0) => return Err(HandOverError::Closed),
                Ok(n) => self.at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// One turn's share of the copy: up to [`COPY_STEP`] connections, as records of what they
    /// are now, with their sockets; once they are all copied, up to [`CLIENT_STEPS`] records
    /// of registry clients. Never waits on the socket. Returns true once everything is copied
    /// and written.
    fn copy(&mut self, b: &Base) -> Result<bool, HandOverError> {
        let mut budget = COPY_STEP;
        let mut client_steps = CLIENT_STEPS;
        loop {
            if !self.pump()? {
                return Ok(false);
            }
            if self.todo.is_empty() {
                if self.clients.is_empty() {
                    return Ok(true);
                }
                if client_steps == 0 {
                    return Ok(false);
                }
                client_steps -= 1;
                self.copy_clients(b);
                continue;
            }
            if budget == 0 {
                return Ok(false);
            }
            let mut recs = Vec::new();
            let mut fds = Vec::new();
            let mut marks = Vec::new();
            let mut bytes = 0;
            while recs.len() < ho::BATCH && bytes < ho::BATCH_BYTES {
                let Some(slot) = self.todo.pop() else { break };
                // Closed meanwhile, or waiting on the app now: the commit sees to it.
                let Some(c) = b.core.conns.get(slot).filter(|c| c.copies_ahead()) else {
                    continue;
                };
                let r = c.record(slot, &b.core.fanout, b.core.now);
                bytes += r.unread.len() + r.unsent.len();
                recs.push(r);
                fds.push(c.stream.as_raw_fd());
                marks.push((slot, c.mark()));
            }
            budget = budget.saturating_sub(recs.len().max(1));
            if recs.is_empty() {
                continue;
            }
            self.frame.clear();
            ho::encode(&Record::Conns { conns: recs }, &mut self.frame);
            // The descriptors go now or never: one closed before a later try could have
            // its number reused by then.
            match crate::sys::fdpass::send_with_fds(&self.sock, &self.frame, &fds) {
                Ok(n) => {
                    self.at = n;
                    self.copied.extend(marks);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.frame.clear();
                    self.at = 0;
                    self.todo.extend(marks.iter().rev().map(|&(s, _)| s));
                    self.writable = false;
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Put the next record of registry clients in the frame to write: at most [`CLIENT_AHEAD`]
    /// clients, [`INFO_AHEAD`] of them with a uid, groups or a session.
    fn copy_clients(&mut self, b: &Base) {
        let reg = &b.core.reg;
        let mut ids = Vec::with_capacity(CLIENT_AHEAD.min(self.clients.len()));
        let mut with_info = 0;
        while ids.len() < CLIENT_AHEAD && with_info < INFO_AHEAD {
            let Some(c) = self.clients.pop() else { break };
            if reg.get(c).is_some_and(|i| !i.is_empty()) {
                with_info += 1;
            }
            ids.push(c);
        }
        self.clients_copied += ids.len();
        self.frame.clear();
        ho::encode(&ho::clients_record(reg, &ids), &mut self.frame);
        self.at = 0;
    }

    /// Send what changed since the copy, the registry clients that changed, the links and the
    /// app's state, with the clients' reads held (blocking, bounded by [`IO_TIMEOUT`]);
    /// returns the slots of the connections and links that went (still open here until
    /// [`forget_moved`]) and how many registry clients were sent again.
    pub(super) fn commit(self, b: &mut Base) -> Result<Committed, HandOverError> {
        let Outgoing {
            sock,
            copied,
            clients,
            frame,
            at,
            ..
        } = self;
        let _ = b
            .poll
            .registry()
            .deregister(&mut SourceFd(&sock.as_raw_fd()));
        blocking(&sock)?;
        if at < frame.len() {
            (&sock).write_all(&frame[at..])?;
        }
        // The app's last word to the connections it still holds, and its memory for the next.
        let state = guarded(&mut b.core, None, "hand_over", |cx| b.app.hand_over(cx))
            .flatten()
            .and_then(|s| serde_json::to_value(s).ok());
        let changes = b.core.reg.take_changes();
        let core = &b.core;
        let now = core.now;
        let mut moving = Vec::new();
        let mut gone = Vec::new();
        let mut late = Vec::new();
        let mut stale = Vec::new();
        for (slot, c) in core.conns.iter() {
            let copy = copied.get(&slot);
            if !c.movable() {
                if copy.is_some() {
                    gone.push(slot as u32);
                }
                continue;
            }
            moving.push(slot);
            match copy {
                None => late.push(slot),
                Some(m) if !m.is_of(c) => {
                    gone.push(slot as u32);
                    late.push(slot);
                }
                Some(m) if *m != c.mark() => stale.push(slot),
                Some(_) => {}
            }
        }
        gone.extend(
            copied
                .keys()
                .filter(|&&s| !core.conns.contains(s))
                .map(|&s| s as u32),
        );
        let mut buf = frame;
        if !gone.is_empty() {
            send(&sock, &Record::Gone { slots: gone }, &[], &mut buf)?;
        }
        let record = |slot: usize| -> Option<(ConnRecord, RawFd)> {
            let c = core.conns.get(slot)?;
            Some((c.record(slot, &core.fanout, now), c.stream.as_raw_fd()))
        };
        for (fresh, slots) in [(true, &late), (false, &stale)] {
            let mut recs = Vec::new();
            let mut fds = Vec::new();
            let mut bytes = 0;
            let mut it = slots.iter().peekable();
            while let Some(&slot) = it.next() {
                if let Some((r, fd)) = record(slot) {
                    bytes += r.unread.len() + r.unsent.len();
                    recs.push(r);
                    fds.push(fd);
                }
                let full = recs.len() == ho::BATCH || bytes >= ho::BATCH_BYTES;
                if (full || it.peek().is_none()) && !recs.is_empty() {
                    let conns = std::mem::take(&mut recs);
                    if fresh {
                        send(&sock, &Record::Conns { conns }, &fds, &mut buf)?;
                    } else {
                        send(&sock, &Record::Update { conns }, &[], &mut buf)?;
                    }
                    fds.clear();
                    bytes = 0;
                }
            }
        }
        // The registry: what was not copied yet (a commit that did not wait for the copy),
        // then every client that changed since the copy began, as it is now. Recording
        // stopped just before (`take_changes` below `hand_over`): nothing changes it any more
        // in this process before the links move.
        for ids in clients.chunks(CLIENT_CHUNK) {
            send(&sock, &ho::clients_record(&core.reg, ids), &[], &mut buf)?;
        }
        let resent = match changes {
            Changes::On {
                clients: changed, ..
            } => {
                let n = changed.len();
                for rec in ho::changed_records(&core.reg, changed, CLIENT_CHUNK) {
                    send(&sock, &rec, &[], &mut buf)?;
                }
                n
            }
            // Too many changes to keep track of (or none kept): everything once more.
            Changes::Overflowed | Changes::Off => {
                send(&sock, &Record::Reset, &[], &mut buf)?;
                for rec in ho::registry_records(&core.reg, CLIENT_CHUNK) {
                    send(&sock, &rec, &[], &mut buf)?;
                }
                core.reg.client_count()
            }
        };
        let links: Vec<usize> = core.bus.links.iter().map(|(s, _)| s).collect();
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
            send(&sock, &Record::Links { links: recs }, &fds, &mut buf)?;
        }
        if let Some(state) = state {
            send(&sock, &Record::App { state }, &[], &mut buf)?;
        }
        send(&sock, &Record::Done, &[], &mut buf)?;
        Ok(Committed {
            conns: moving,
            links,
            clients_resent: resent,
        })
    }
}

/// What a commit moved.
#[derive(Debug)]
pub(super) struct Committed {
    /// Slots of the connections that moved (still open here until [`forget_moved`]).
    pub(super) conns: Vec<usize>,
    /// Slots of the bus links that moved.
    pub(super) links: Vec<usize>,
    /// Registry clients sent again at the commit (changed since the copy began).
    pub(super) clients_resent: usize,
}

/// Retiring, after [`Outgoing::commit`]: the moved connections and links are the successor's
/// now. Drop this process's descriptors of them (the sockets stay open in the successor)
/// without any close frame, any `on_close` or any `Down`.
pub(super) fn forget_moved(b: &mut Base, conns: &[usize], links: &[usize]) {
    if conns.len() == b.core.conns.len() {
        // Everything went: drop the slab at once. The sockets' epoll entries stay until
        // this process exits (the successor keeps the sockets open); an event they raise
        // names an empty slot and is ignored, and no slot is taken again (accepting stopped).
        for (_, c) in std::mem::take(&mut b.core.conns) {
            b.peers.release(c.remote.ip());
        }
        b.buffered_input = 0;
        b.core.dirty.clear();
    } else {
        for &slot in conns {
            close::drop_conn(b, slot);
        }
        let core = &mut b.core;
        core.dirty.retain(|&s| core.conns.contains(s));
    }
    for &slot in links {
        if let Some(mut l) = b.core.bus.remove_link(slot) {
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
    let mut buf = Vec::new();
    ho::encode_opening(&hello, &mut buf);
    write_frame(sock, &buf, &[])
}
