//! The worker's shared state: its connections, their output queues, the cluster registry
//! replica, the bus links and the timers ([`Core`]).
//!
//! Sends only queue bytes and mark the connection dirty; the loop writes once per turn.
//! Closes are deferred to the end of the current event so a callback never sees a
//! connection vanish under it. Owner-side gateway operations live here too: a worker changes
//! the state of its own clients, then tells every other worker; deliveries to this worker's
//! own clients are shared by local sends and by sends arriving over the bus.

use super::deflate::Codecs;
use super::encoded::Encoded;
use super::timer::{Due, Timers};
use crate::config::{Limits, WebSocketConfig};
use crate::connection::{Conn, ConnState, Framing};
use crate::gateway::bus::wire::BusMsg;
use crate::gateway::bus::Bus;
use crate::gateway::client_id::{ClientId, ConnId};
use crate::gateway::registry::Registry;
use crate::gateway::{check_group, check_uid, ApiError, MAX_GROUPS_PER_CLIENT};
use crate::protocol::Payload;
use serde_json::{Map, Value};
use slab::Slab;
use std::time::Instant;

/// How a connection is to be closed at the end of the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseHow {
    /// Flush queued output, send a WebSocket close frame with this code, then shut down.
    Graceful(u16),
    /// Drop the socket now (errors, overflow, peer gone).
    Now,
}

/// Counters reported by `kefu status`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    /// Messages decoded.
    pub total_request: u64,
    /// Connections closed for a full send buffer or a failed write.
    pub send_fail: u64,
}

/// Everything the loop and the apps share in one worker.
#[derive(Debug)]
pub(crate) struct Core {
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
    /// The loop's poll registry, for apps' own sockets (set by the worker).
    pub registry: Option<mio::Registry>,
    /// Reusable list of slots for fan-out (kept to avoid an allocation per send).
    pub slots: Vec<usize>,
    /// This turn's frames sent to more than one receiver; queues hold ranges of it.
    pub fanout: Vec<u8>,
    /// Connections left holding ranges of `fanout` by a flush that could not finish.
    pub held_turn: Vec<usize>,
    /// permessage-deflate settings and the codecs every connection shares.
    pub codecs: Codecs,
    /// The worker is stopping, with the close code for WebSocket clients: HTTP answers close
    /// their connection rather than keep it, and an upgrade still in progress completes and
    /// is then closed with this code (the client gets an answer, never a refusal).
    pub stopping: Option<u16>,
}

impl Core {
    /// An empty core.
    pub(crate) fn new(
        worker_id: usize,
        inc: u64,
        limits: Limits,
        ws: &WebSocketConfig,
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
            codecs: Codecs::new(ws),
            stopping: None,
            waker,
            registry: None,
        }
    }

    /// The connection behind `id`, if it is still the same one.
    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(id.index()).filter(|c| c.gen == id.gen)
    }

    /// Mutable access to the connection behind `id`.
    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(id.index()).filter(|c| c.gen == id.gen)
    }

    /// The cluster-wide id of a local connection.
    pub(crate) fn client_id(&self, id: ConnId) -> ClientId {
        ClientId::new(self.inc, id)
    }

    /// The local connection behind a client id, if it lives in this worker.
    pub(crate) fn local(&self, c: ClientId) -> Option<ConnId> {
        (c.inc == self.inc).then_some(c.conn)
    }

    /// Queue raw bytes (already framed) for `slot`; closes it if its send buffer overflows.
    pub(crate) fn queue_raw(&mut self, slot: usize, head: &[u8], body: &[u8]) {
        if let Some(c) = self.admit(slot) {
            c.out.push2(head, body);
        }
    }

    /// Queue `start..end` of this turn's fan-out buffer; same bound as [`Core::queue_raw`].
    pub(crate) fn queue_turn(&mut self, slot: usize, start: usize, end: usize) {
        if let Some(c) = self.admit(slot) {
            c.out.push_turn(start, end);
        }
    }

    /// End of a loop turn: queues still holding ranges of the fan-out buffer copy them into
    /// their own bytes, and the buffer is reused for the next turn.
    pub(crate) fn seal_fanout(&mut self) {
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
    pub(crate) fn request_close(&mut self, id: ConnId, how: CloseHow) {
        if let Some(c) = self.get_mut(id) {
            if c.state == ConnState::Open || c.state == ConnState::Handshake || how == CloseHow::Now
            {
                self.pending_close.push((id, how));
            }
        }
    }

    /// Make sure the deadline check of `slot` runs no later than `at` (a later pending check
    /// stays in the heap and is ignored when it surfaces).
    pub(crate) fn arm_conn_timer(&mut self, slot: usize, at: Instant) {
        if let Some(c) = self.conns.get_mut(slot) {
            if c.timer_at.is_none_or(|t| at < t) {
                c.timer_at = Some(at);
                self.timers.schedule(at, Due::Conn(slot as u32, c.gen));
            }
        }
    }

    fn owned(&self, id: ConnId) -> Option<ClientId> {
        let c = self.client_id(id);
        self.reg.is_online(c).then_some(c)
    }

    /// A local connection became a gateway client.
    pub(crate) fn local_up(&mut self, id: ConnId) {
        let c = self.client_id(id);
        self.reg.add(c);
        self.bus.broadcast(&BusMsg::Up(id));
    }

    /// A local client is gone.
    pub(crate) fn local_down(&mut self, id: ConnId) {
        let c = self.client_id(id);
        if self.reg.remove(c).is_some() {
            self.bus.broadcast(&BusMsg::Down(id));
        }
    }

    /// Add a local client to a group.
    pub(crate) fn local_join(&mut self, id: ConnId, group: &str) -> Result<(), ApiError> {
        check_group(group)?;
        let c = self.owned(id).ok_or(ApiError::NotOnline)?;
        let info = self.reg.get(c).ok_or(ApiError::NotOnline)?;
        if info.groups.iter().any(|g| g == group) {
            return Ok(());
        }
        if info.groups.len() >= MAX_GROUPS_PER_CLIENT {
            return Err(ApiError::TooManyGroups);
        }
        self.reg.join(c, group);
        self.bus.broadcast(&BusMsg::Join(id, group));
        Ok(())
    }

    /// Remove a local client from a group.
    pub(crate) fn local_leave(&mut self, id: ConnId, group: &str) -> Result<(), ApiError> {
        let c = self.owned(id).ok_or(ApiError::NotOnline)?;
        self.reg.leave(c, group);
        self.bus.broadcast(&BusMsg::Leave(id, group));
        Ok(())
    }

    /// Bind a uid to a local client.
    pub(crate) fn local_bind(&mut self, id: ConnId, uid: &str) -> Result<(), ApiError> {
        check_uid(uid)?;
        let c = self.owned(id).ok_or(ApiError::NotOnline)?;
        self.reg.bind(c, uid);
        self.bus.broadcast(&BusMsg::Bind(id, uid));
        Ok(())
    }

    /// Unbind the uid of a local client.
    pub(crate) fn local_unbind(&mut self, id: ConnId) -> Result<(), ApiError> {
        let c = self.owned(id).ok_or(ApiError::NotOnline)?;
        self.reg.unbind(c);
        self.bus.broadcast(&BusMsg::Unbind(id));
        Ok(())
    }

    /// Replace (or with `merge`, merge into) a local client's session.
    pub(crate) fn local_session(
        &mut self,
        id: ConnId,
        data: Map<String, Value>,
        merge: bool,
    ) -> Result<(), ApiError> {
        let c = self.owned(id).ok_or(ApiError::NotOnline)?;
        let (next, bytes) = self.reg.next_session(c, data, merge)?;
        self.reg.set_session(c, next);
        self.bus.broadcast(&BusMsg::Session(id, &bytes));
        Ok(())
    }

    /// Remove every local client from `group`.
    pub(crate) fn local_ungroup(&mut self, group: &str) {
        let mine: Vec<ClientId> = self
            .reg
            .group(group)
            .and_then(|m| m.get(&self.inc))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for c in mine {
            if let Some(id) = self.local(c) {
                let _ = self.local_leave(id, group);
            }
        }
    }

    /// Queue `enc` on the local connections listed in `self.slots`.
    fn queue_slots(&mut self, enc: &Encoded<'_>, slots: &mut Vec<usize>) {
        for &s in slots.iter() {
            enc.queue(self, s);
        }
        slots.clear();
    }

    /// Deliver to this worker's members of `groups`, once each, except `exclude`.
    pub(crate) fn deliver_groups(&mut self, groups: &[&str], exclude: &[ConnId], msg: Payload<'_>) {
        let mut slots = std::mem::take(&mut self.slots);
        for g in groups {
            if let Some(set) = self.reg.group(g).and_then(|m| m.get(&self.inc)) {
                slots.extend(
                    set.iter()
                        .filter(|c| !exclude.contains(&c.conn))
                        .map(|c| c.conn.index()),
                );
            }
        }
        if groups.len() > 1 {
            slots.sort_unstable();
            slots.dedup();
        }
        let enc = Encoded::for_receivers(msg, slots.len());
        self.queue_slots(&enc, &mut slots);
        self.slots = slots;
    }

    /// Deliver to this worker's clients bound to `uids`.
    pub(crate) fn deliver_uids(&mut self, uids: &[&str], msg: Payload<'_>) {
        let mut slots = std::mem::take(&mut self.slots);
        for u in uids {
            if let Some(set) = self.reg.uid(u).and_then(|m| m.get(&self.inc)) {
                slots.extend(set.iter().map(|c| c.conn.index()));
            }
        }
        if uids.len() > 1 {
            slots.sort_unstable();
            slots.dedup();
        }
        let enc = Encoded::for_receivers(msg, slots.len());
        self.queue_slots(&enc, &mut slots);
        self.slots = slots;
    }

    /// Deliver to every local gateway client except `exclude`.
    pub(crate) fn deliver_all(&mut self, exclude: &[ConnId], msg: Payload<'_>) {
        self.deliver_local_where(msg, |s, gen| {
            !exclude.contains(&ConnId {
                slot: s as u32,
                gen,
            })
        });
    }

    /// Deliver to the local gateway clients in share `part` of `parts` (by slot), so a
    /// periodic send to everyone can be spread over several turns.
    pub(crate) fn deliver_all_part(&mut self, part: usize, parts: usize, msg: Payload<'_>) {
        let parts = parts.max(1);
        self.deliver_local_where(msg, |s, _| s % parts == part % parts);
    }

    fn deliver_local_where(&mut self, msg: Payload<'_>, keep: impl Fn(usize, u32) -> bool) {
        let mut slots = std::mem::take(&mut self.slots);
        slots.extend(
            self.conns
                .iter()
                .filter(|(s, c)| c.framing != Framing::None && keep(*s, c.gen))
                .map(|(s, _)| s),
        );
        let enc = Encoded::for_receivers(msg, slots.len());
        self.queue_slots(&enc, &mut slots);
        self.slots = slots;
    }
}

/// Fan-out buffer capacity kept between turns; a burst that grew it further is given back.
const FANOUT_KEEP: usize = 1 << 20;
