//! The worker's shared state ([`Core`]) and the handle apps act through ([`Ctx`]).
//!
//! Sends only queue bytes and mark the connection dirty; the loop writes once per turn.
//! Closes are deferred to the end of the current event so a callback never sees a
//! connection vanish under it.

use super::timer::{Due, Timers};
use crate::app::Payload;
use crate::config::Limits;
use crate::connection::{Conn, ConnState, Framing};
use crate::protocol::websocket::{close as ws_close, frame as ws_frame};
use slab::Slab;
use std::collections::{HashMap, HashSet};
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
    /// Spawn counter from the master: ids from an earlier incarnation never match.
    pub generation: u32,
    /// Next connection generation.
    pub next_gen: u32,
    /// Limits from the config.
    pub limits: Limits,
    /// Slots with output to flush this turn.
    pub dirty: Vec<usize>,
    /// Closes requested during the current event.
    pub pending_close: Vec<(ConnId, CloseHow)>,
    /// Local group index: group -> members.
    pub groups: HashMap<String, HashSet<ConnId>>,
    /// Deadlines.
    pub timers: Timers,
    /// Status counters.
    pub stats: Stats,
    /// Loop time of the current turn.
    pub now: Instant,
}

impl Core {
    /// An empty core.
    pub fn new(worker_id: usize, generation: u32, limits: Limits) -> Core {
        Core {
            conns: Slab::new(),
            worker_id,
            generation,
            next_gen: 0,
            limits,
            dirty: Vec::new(),
            pending_close: Vec::new(),
            groups: HashMap::new(),
            timers: Timers::default(),
            stats: Stats::default(),
            now: Instant::now(),
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

    /// The id of the connection in `slot`.
    pub fn id_of(&self, slot: usize) -> Option<ConnId> {
        self.conns.get(slot).map(|c| ConnId {
            slot: slot as u32,
            gen: c.gen,
        })
    }

    /// The opaque, URL-safe id clients and backends use for `id`.
    pub fn client_id(&self, id: ConnId) -> String {
        format!(
            "{:04x}{:08x}{:08x}{:08x}",
            self.worker_id as u16, self.generation, id.slot, id.gen
        )
    }

    /// Queue raw bytes (already framed) for `slot`; closes it if its send buffer overflows.
    pub fn queue_raw(&mut self, slot: usize, head: &[u8], body: &[u8]) {
        let max = self.limits.max_send_buffer;
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.out.len() + head.len() + body.len() > max {
            // Workerman drops the package and reports SEND_FAIL; a chat client that cannot
            // keep up is better disconnected (it reconnects and resumes) than silently gapped.
            self.stats.send_fail += 1;
            let id = ConnId {
                slot: slot as u32,
                gen: c.gen,
            };
            c.state = ConnState::Closing;
            self.pending_close.push((id, CloseHow::Now));
            return;
        }
        c.out.push2(head, body);
        if !c.in_dirty {
            c.in_dirty = true;
            self.dirty.push(slot);
        }
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

/// A message encoded once for every protocol, then copied to each receiver's buffer.
pub struct Encoded<'a> {
    ws_head: [u8; 10],
    ws_head_len: usize,
    body: &'a [u8],
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
        }
    }

    /// Queue this message on `slot` in the framing its protocol needs.
    pub fn queue(&self, core: &mut Core, slot: usize) {
        let Some(c) = core.conns.get(slot) else {
            return;
        };
        if !c.accepts_messages() {
            return;
        }
        match c.framing {
            Framing::Ws => core.queue_raw(slot, &self.ws_head[..self.ws_head_len], self.body),
            Framing::Text => core.queue_raw(slot, self.body, b"\n"),
            Framing::None => {}
        }
    }
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

    /// Send one message to one client; returns false if it is gone or closing.
    pub fn send(&mut self, id: ConnId, msg: Payload<'_>) -> bool {
        if self.core.get(id).is_none_or(|c| !c.accepts_messages()) {
            return false;
        }
        Encoded::new(msg).queue(self.core, id.slot as usize);
        true
    }

    /// Send one message to many clients, encoding it once.
    pub fn send_many(&mut self, ids: impl IntoIterator<Item = ConnId>, msg: Payload<'_>) {
        let enc = Encoded::new(msg);
        for id in ids {
            if self.core.get(id).is_some() {
                enc.queue(self.core, id.slot as usize);
            }
        }
    }

    /// Send to every member of `group` except those in `exclude`.
    pub fn send_to_group(&mut self, group: &str, msg: Payload<'_>, exclude: &[ConnId]) {
        let Some(members) = self.core.groups.get(group) else {
            return;
        };
        let enc = Encoded::new(msg);
        // Collect first: queueing may close a member (overflow), which edits the group index.
        let slots: Vec<usize> = members
            .iter()
            .filter(|m| !exclude.contains(m))
            .map(|m| m.slot as usize)
            .collect();
        for slot in slots {
            enc.queue(self.core, slot);
        }
    }

    /// Send to every open connection of this worker except those in `exclude`.
    pub fn send_to_all(&mut self, msg: Payload<'_>, exclude: &[ConnId]) {
        let enc = Encoded::new(msg);
        let slots: Vec<usize> = self
            .core
            .conns
            .iter()
            .filter(|(s, c)| {
                !exclude.contains(&ConnId {
                    slot: *s as u32,
                    gen: c.gen,
                })
            })
            .map(|(s, _)| s)
            .collect();
        for slot in slots {
            enc.queue(self.core, slot);
        }
    }

    /// Close a client after its queued output (WebSocket: close frame 1000).
    pub fn close(&mut self, id: ConnId) {
        self.core
            .request_close(id, CloseHow::Graceful(ws_close::NORMAL));
    }

    /// Drop a client now, discarding queued output.
    pub fn destroy(&mut self, id: ConnId) {
        self.core.request_close(id, CloseHow::Now);
    }

    /// Whether `id` is a live connection of this worker.
    pub fn is_online(&self, id: ConnId) -> bool {
        self.core.get(id).is_some_and(|c| c.accepts_messages())
    }

    /// Add `id` to `group`.
    pub fn join_group(&mut self, id: ConnId, group: &str) {
        let Some(c) = self.core.get_mut(id) else {
            return;
        };
        if !c.groups.iter().any(|g| g == group) {
            c.groups.push(group.to_owned());
        }
        self.core
            .groups
            .entry(group.to_owned())
            .or_default()
            .insert(id);
    }

    /// Remove `id` from `group` (empty groups vanish).
    pub fn leave_group(&mut self, id: ConnId, group: &str) {
        if let Some(c) = self.core.get_mut(id) {
            c.groups.retain(|g| g != group);
        }
        remove_member(&mut self.core.groups, group, id);
    }

    /// Whether `id` is in `group`.
    pub fn is_in_group(&self, id: ConnId, group: &str) -> bool {
        self.core.groups.get(group).is_some_and(|m| m.contains(&id))
    }

    /// Members of `group`, in id order.
    pub fn group_members(&self, group: &str) -> Vec<ConnId> {
        let mut v: Vec<ConnId> = self
            .core
            .groups
            .get(group)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The session of `id`.
    pub fn session(&self, id: ConnId) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.core.get(id).map(|c| &c.session)
    }

    /// The session of `id`, to edit.
    pub fn session_mut(
        &mut self,
        id: ConnId,
    ) -> Option<&mut serde_json::Map<String, serde_json::Value>> {
        self.core.get_mut(id).map(|c| &mut c.session)
    }

    /// The opaque, URL-safe id clients and backends use for `id`.
    pub fn client_id(&self, id: ConnId) -> String {
        self.core.client_id(id)
    }

    /// Parse a client id made by [`Ctx::client_id`] of this worker incarnation.
    pub fn parse_client_id(&self, s: &str) -> Option<ConnId> {
        if s.len() != 28 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let w = u16::from_str_radix(s.get(0..4)?, 16).ok()?;
        let g = u32::from_str_radix(s.get(4..12)?, 16).ok()?;
        let slot = u32::from_str_radix(s.get(12..20)?, 16).ok()?;
        let gen = u32::from_str_radix(s.get(20..28)?, 16).ok()?;
        (w as usize == self.core.worker_id && g == self.core.generation)
            .then_some(ConnId { slot, gen })
    }

    /// Peer address of `id`.
    pub fn remote_addr(&self, id: ConnId) -> Option<std::net::SocketAddr> {
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
}

/// Remove `id` from `group` in the index, dropping the group when it empties.
pub fn remove_member(groups: &mut HashMap<String, HashSet<ConnId>>, group: &str, id: ConnId) {
    if let Some(m) = groups.get_mut(group) {
        m.remove(&id);
        if m.is_empty() {
            groups.remove(group);
        }
    }
}
