//! The worker's shared state ([`Core`]) and the handle apps act through ([`Ctx`]).
//!
//! Sends only queue bytes and mark the connection dirty; the loop writes once per turn.
//! Closes are deferred to the end of the current event so a callback never sees a
//! connection vanish under it. The gateway API (groups, uids, sessions, cross-worker sends)
//! is implemented on [`Ctx`] in `crate::gateway::api`.

use super::timer::{Due, Timers};
use crate::app::Payload;
use crate::config::Limits;
use crate::connection::{Conn, ConnState, Framing};
use crate::gateway::bus::Bus;
use crate::gateway::client_id::ClientId;
use crate::gateway::registry::Registry;
use crate::protocol::websocket::frame as ws_frame;
use slab::Slab;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// A connection in this worker: slab slot plus generation, so a stale id never reaches a newcomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// Slab slot.
    pub slot: u32,
    /// Generation of the slot's occupant.
    pub gen: u32,
}

/// An app timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub u64);

/// How a connection is to be closed at the end of the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseHow {
    /// Flush queued output, send a WebSocket close frame with this code, then shut down.
    Graceful(u16),
    /// Drop the socket now (errors, overflow, peer gone).
    Now,
}

/// Counters reported by `kefu status`.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Messages decoded.
    pub total_request: u64,
    /// Connections closed for a full send buffer or a failed write.
    pub send_fail: u64,
}

/// Everything the loop and the apps share in one worker.
#[derive(Debug)]
pub struct Core {
    /// Live connections.
    pub conns: Slab<Conn>,
    /// Worker slot, from the master.
    pub worker_id: usize,
    /// This worker process's incarnation: unique across workers and restarts.
    pub inc: u64,
    /// Next connection generation.
    pub next_gen: u32,
    /// Limits from the config.
    pub limits: Limits,
    /// Slots with output to flush this turn.
    pub dirty: Vec<usize>,
    /// Closes requested during the current event.
    pub pending_close: Vec<(ConnId, CloseHow)>,
    /// Every client of the cluster with its uid, groups and session.
    pub reg: Registry,
    /// Links to the other workers.
    pub bus: Bus,
    /// Deadlines.
    pub timers: Timers,
    /// Status counters.
    pub stats: Stats,
    /// Loop time of the current turn.
    pub now: Instant,
    /// Wakes the loop from app threads.
    pub waker: std::sync::Arc<mio::Waker>,
    /// Reusable list of slots for fan-out (kept to avoid an allocation per send).
    pub slots: Vec<usize>,
    /// This turn's frames sent to more than one receiver; queues hold ranges of it.
    pub fanout: Vec<u8>,
    /// Connections left holding ranges of `fanout` by a flush that could not finish.
    pub held_turn: Vec<usize>,
}

impl Core {
    /// An empty core.
    pub fn new(
        worker_id: usize,
        inc: u64,
        limits: Limits,
        waker: std::sync::Arc<mio::Waker>,
    ) -> Core {
        Core {
            conns: Slab::new(),
            worker_id,
            inc,
            next_gen: 0,
            limits,
            dirty: Vec::new(),
            pending_close: Vec::new(),
            reg: Registry::default(),
            bus: Bus::new(inc, worker_id),
            timers: Timers::default(),
            stats: Stats::default(),
            now: Instant::now(),
            slots: Vec::new(),
            fanout: Vec::new(),
            held_turn: Vec::new(),
            waker,
        }
    }

    /// The connection behind `id`, if it is still the same one.
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(id.slot as usize).filter(|c| c.gen == id.gen)
    }

    /// Mutable access to the connection behind `id`.
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns
            .get_mut(id.slot as usize)
            .filter(|c| c.gen == id.gen)
    }

    /// The cluster-wide id of a local connection.
    pub fn client_id(&self, id: ConnId) -> ClientId {
        ClientId {
            inc: self.inc,
            slot: id.slot,
            gen: id.gen,
        }
    }

    /// The local connection behind a client id, if it lives in this worker.
    pub fn local(&self, c: ClientId) -> Option<ConnId> {
        (c.inc == self.inc).then_some(ConnId {
            slot: c.slot,
            gen: c.gen,
        })
    }

    /// Queue raw bytes (already framed) for `slot`; closes it if its send buffer overflows.
    pub fn queue_raw(&mut self, slot: usize, head: &[u8], body: &[u8]) {
        if let Some(c) = self.admit(slot) {
            c.out.push2(head, body);
        }
    }

    /// Queue `start..end` of this turn's fan-out buffer; same bound as [`Core::queue_raw`].
    pub fn queue_turn(&mut self, slot: usize, start: usize, end: usize) {
        if let Some(c) = self.admit(slot) {
            c.out.push_turn(start, end);
        }
    }

    /// End of a loop turn: queues still holding ranges of the fan-out buffer copy them into
    /// their own bytes, and the buffer is reused for the next turn.
    pub fn seal_fanout(&mut self) {
        if self.fanout.is_empty() {
            return;
        }
        // Every queue that took a range was marked dirty; those not written since are in
        // `dirty` (queued after the flush), those a full socket stopped are in `held_turn`.
        for &slot in self.held_turn.iter().chain(self.dirty.iter()) {
            if let Some(c) = self.conns.get_mut(slot) {
                c.out.freeze(&self.fanout);
            }
        }
        self.held_turn.clear();
        self.fanout.clear();
        if self.fanout.capacity() > FANOUT_KEEP {
            self.fanout = Vec::with_capacity(FANOUT_KEEP);
        }
    }

    /// The connection at `slot` if its send buffer takes another message, marked for a flush
    /// at the end of the turn; otherwise it is closed and `None` returned.
    fn admit(&mut self, slot: usize) -> Option<&mut Conn> {
        let max = self.limits.max_send_buffer;
        let c = self.conns.get_mut(slot)?;
        if c.out.len() >= max {
            // Before calling it an overflow, give the socket a chance: a burst read in one
            // turn may have queued more than the bound for a client that does read.
            if let Ok((n, _)) = c.out.flush_to(&mut c.stream, &self.fanout) {
                c.bytes_written += n as u64;
            }
        }
        if c.out.len() >= max {
            // The buffer is already full (Workerman's rule: one message may take it past the
            // bound, the next one fails, so a single large message always fits an idle
            // connection). Workerman drops the package and reports SEND_FAIL; a chat client
            // that cannot keep up is better disconnected (it reconnects and resumes) than
            // silently gapped.
            self.stats.send_fail += 1;
            let id = ConnId {
                slot: slot as u32,
                gen: c.gen,
            };
            c.state = ConnState::Closing;
            self.pending_close.push((id, CloseHow::Now));
            return None;
        }
        if !c.in_dirty {
            c.in_dirty = true;
            self.dirty.push(slot);
        }
        Some(c)
    }

    /// Ask for `id` to be closed at the end of the event.
    pub fn request_close(&mut self, id: ConnId, how: CloseHow) {
        if let Some(c) = self.get_mut(id) {
            if c.state == ConnState::Open || c.state == ConnState::Handshake || how == CloseHow::Now
            {
                self.pending_close.push((id, how));
            }
        }
    }

    /// Make sure the deadline check of `slot` runs no later than `at` (a later pending check
    /// stays in the heap and is ignored when it surfaces).
    pub fn arm_conn_timer(&mut self, slot: usize, at: Instant) {
        if let Some(c) = self.conns.get_mut(slot) {
            if c.timer_at.is_none_or(|t| at < t) {
                c.timer_at = Some(at);
                self.timers.schedule(at, Due::Conn(slot as u32, c.gen));
            }
        }
    }
}

/// Fan-out buffer capacity kept between turns; a burst that grew it further is given back.
const FANOUT_KEEP: usize = 1 << 20;

/// Smallest frame worth sharing between receivers; smaller ones are cheaper to copy (and
/// coalesce better into one owned segment).
const SHARE_MIN: usize = 64;

/// A message encoded once for every protocol. Sent to one receiver it is copied into that
/// receiver's buffer; sent to several, each framing is built once into a shared frame.
pub struct Encoded<'a> {
    ws_head: [u8; 10],
    ws_head_len: usize,
    body: &'a [u8],
    share: bool,
    /// Where each framing sits in the worker's fan-out buffer, once written there.
    ws_at: Cell<Option<(usize, usize)>>,
    text_at: Cell<Option<(usize, usize)>>,
}

impl<'a> Encoded<'a> {
    /// Encode `msg` once.
    pub fn new(msg: Payload<'a>) -> Encoded<'a> {
        let (op, body) = match msg {
            Payload::Text(s) => (ws_frame::OpCode::Text, s.as_bytes()),
            Payload::Binary(b) => (ws_frame::OpCode::Binary, b),
        };
        let mut ws_head = [0u8; 10];
        let ws_head_len = ws_frame::server_header(op, body.len(), &mut ws_head);
        Encoded {
            ws_head,
            ws_head_len,
            body,
            share: false,
            ws_at: Cell::new(None),
            text_at: Cell::new(None),
        }
    }

    /// Encode `msg` once for `receivers` connections: shared if that saves copies.
    pub fn for_receivers(msg: Payload<'a>, receivers: usize) -> Encoded<'a> {
        let mut e = Encoded::new(msg);
        e.share = receivers > 1 && e.body.len() >= SHARE_MIN;
        e
    }

    /// Queue this message on `slot` in the framing its protocol needs.
    pub fn queue(&self, core: &mut Core, slot: usize) {
        let Some(c) = core.conns.get(slot) else {
            return;
        };
        if !c.accepts_messages() {
            return;
        }
        let head = &self.ws_head[..self.ws_head_len];
        match (c.framing, self.share) {
            (Framing::Ws, false) => core.queue_raw(slot, head, self.body),
            (Framing::Text, false) => core.queue_raw(slot, self.body, b"\n"),
            (Framing::Ws, true) => {
                let (start, end) = placed(&self.ws_at, &mut core.fanout, head, self.body);
                core.queue_turn(slot, start, end);
            }
            (Framing::Text, true) => {
                let (start, end) = placed(&self.text_at, &mut core.fanout, self.body, b"\n");
                core.queue_turn(slot, start, end);
            }
            (Framing::None, _) => {}
        }
    }

    /// Queue on a local connection if `id` is still the same one.
    pub fn queue_id(&self, core: &mut Core, id: ConnId) {
        if core.get(id).is_some() {
            self.queue(core, id.slot as usize);
        }
    }
}

/// The range of `a` then `b` in the fan-out buffer, appending them on first use.
fn placed(
    at: &Cell<Option<(usize, usize)>>,
    fanout: &mut Vec<u8>,
    a: &[u8],
    b: &[u8],
) -> (usize, usize) {
    if let Some(r) = at.get() {
        return r;
    }
    let start = fanout.len();
    fanout.extend_from_slice(a);
    fanout.extend_from_slice(b);
    let r = (start, fanout.len());
    at.set(Some(r));
    r
}

/// The handle an app gets on every event.
pub struct Ctx<'a> {
    /// The worker state.
    pub core: &'a mut Core,
}

impl<'a> Ctx<'a> {
    /// Wrap the core.
    pub fn new(core: &'a mut Core) -> Ctx<'a> {
        Ctx { core }
    }

    /// Peer address of a local client.
    pub fn remote_addr(&self, c: ClientId) -> Option<std::net::SocketAddr> {
        let id = self.core.local(c)?;
        self.core.get(id).map(|c| c.remote)
    }

    /// Start a timer; `on_timer` gets its id and `tag`.
    pub fn add_timer(&mut self, after: Duration, repeat: bool, tag: u64) -> TimerId {
        TimerId(self.core.timers.add_app(self.core.now, after, repeat, tag))
    }

    /// Cancel a timer.
    pub fn del_timer(&mut self, t: TimerId) -> bool {
        self.core.timers.cancel_app(t.0)
    }

    /// Answer an HTTP request the app left [`Pending`](crate::app::HttpOutcome::Pending);
    /// the connection closes after the answer. False if the client went away meanwhile.
    pub fn respond_http(
        &mut self,
        conn: ClientId,
        resp: &crate::protocol::http::response::Response,
    ) -> bool {
        let Some(id) = self.core.local(conn) else {
            return false;
        };
        match self.core.get_mut(id) {
            Some(c) if c.http_pending => c.http_pending = false,
            _ => return false,
        }
        let mut out = Vec::new();
        resp.write_to(&mut out, false);
        self.core.queue_raw(id.slot as usize, &out, &[]);
        self.core.request_close(id, CloseHow::Graceful(1000));
        true
    }

    /// A handle that wakes this worker's loop from another thread; the app's `on_wake` runs then.
    pub fn waker(&self) -> std::sync::Arc<mio::Waker> {
        self.core.waker.clone()
    }

    /// This worker's slot number.
    pub fn worker_id(&self) -> usize {
        self.core.worker_id
    }
}
