//! The relay: this node's end of every bus link between a local worker and a worker of
//! another node. Workers see an ordinary bus link per remote worker (handed over by the
//! master like a local one); the relay reads the frames they write, batches them per
//! destination node for the publisher thread, and writes the frames other nodes sent into the
//! right links. It runs on its own thread and never touches Redis itself.
//!
//! The relay holds nothing back: what it read in a turn is handed to the publisher at the end
//! of that turn. The publish window is kept by the workers (`crate::gateway::bus::hold`),
//! which write deliveries to these links at most once per window, so the relay, and every
//! hop after it, wakes once per window at a high rate.
//!
//! A link to a remote worker ends when that worker (or its node) is gone: the relay shuts
//! its side, the worker forgets the remote clients and closes its end. When links must be
//! rebuilt (a node came back with a new epoch), the new link is handed over only once the
//! old one is closed by the worker, so the worker never applies a replay before forgetting
//! what it replaces.

use super::wire::{self, Header};
use super::{node_of, Cmd, Handover, Lease, NodeView, PubCmd, View};
use crate::{info, warn};
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Poll token of the waker (link tokens are slab keys, far below).
pub(super) const WAKER: Token = Token(1 << 30);
/// Bytes a batch may reach before it is handed to the publisher within the turn.
const BATCH_MAX: usize = 1 << 20;
/// Bytes queued to one worker before its link is considered stuck and dropped.
const LINK_OUT_MAX: usize = 256 << 20;

#[derive(Debug)]
enum LinkState {
    Live,
    /// Our side is shut; waiting for the worker to close its end. `then` are the links that
    /// replace this one, handed over once it is closed.
    Draining {
        then: Vec<Handover>,
    },
}

#[derive(Debug)]
struct RLink {
    local: u64,
    remote: u64,
    sock: UnixStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    state: LinkState,
    /// Our write side is shut (a draining link, once its queue is written).
    shut: bool,
    /// Registered for writability: only while `out` waits for room. A link registered for
    /// it all the time would wake the relay each time its worker reads.
    wants_write: bool,
}

/// What this node knows of another node.
#[derive(Debug)]
struct Remote {
    epoch: u64,
    name: String,
    /// Its workers: incarnation -> (slot, when we first heard of it).
    workers: HashMap<u64, (u16, Instant)>,
    /// Its workers that ended in this epoch: late frames from them are dropped.
    gone: HashSet<u64>,
    last_seen: Instant,
    /// Last batch sequence number received in this epoch.
    rx_seq: Option<u64>,
}

/// The relay thread's state.
#[derive(Debug)]
pub(super) struct Relay {
    pub(super) poll: Poll,
    pub(super) rx: Receiver<Cmd>,
    pub(super) node: u8,
    pub(super) epoch: u64,
    pub(super) lease: Duration,
    pub(super) to_master: Sender<Handover>,
    pub(super) master_waker: Arc<Waker>,
    pub(super) to_pub: Sender<PubCmd>,
    pub(super) view: Arc<Mutex<View>>,
    links: Slab<RLink>,
    live: HashMap<(u64, u64), usize>,
    draining: HashMap<(u64, u64), usize>,
    local: BTreeMap<u64, u16>,
    nodes: BTreeMap<u8, Remote>,
    batches: BTreeMap<u8, Vec<u8>>,
    scratch: Vec<u8>,
}

impl Relay {
    /// A relay with no links yet.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        poll: Poll,
        rx: Receiver<Cmd>,
        node: u8,
        epoch: u64,
        lease: Duration,
        to_master: Sender<Handover>,
        master_waker: Arc<Waker>,
        to_pub: Sender<PubCmd>,
        view: Arc<Mutex<View>>,
    ) -> Relay {
        Relay {
            poll,
            rx,
            node,
            epoch,
            lease,
            to_master,
            master_waker,
            to_pub,
            view,
            links: Slab::new(),
            live: HashMap::new(),
            draining: HashMap::new(),
            local: BTreeMap::new(),
            nodes: BTreeMap::new(),
            batches: BTreeMap::new(),
            scratch: vec![0; 64 * 1024],
        }
    }

    /// Run until the master drops its handle.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                warn!("cluster relay: poll failed: {e}");
                return;
            }
            for ev in events.iter() {
                let Token(t) = ev.token();
                if ev.token() == WAKER {
                    continue;
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.read_link(t);
                }
                if ev.is_writable() {
                    self.write_out(t);
                }
            }
            loop {
                match self.rx.try_recv() {
                    Ok(cmd) => self.on_cmd(cmd),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            self.flush_batches();
        }
    }

    fn on_cmd(&mut self, cmd: Cmd) {
        let incoming = matches!(cmd, Cmd::Incoming(_));
        match cmd {
            Cmd::LocalWorkers(ws) => self.set_local(ws),
            Cmd::Incoming(b) => self.incoming(&b),
            Cmd::Membership(leases) => self.membership(leases),
            Cmd::Reconnected => {
                // Everyone's lease may be missing until they write it again: give them time.
                let now = Instant::now();
                for r in self.nodes.values_mut() {
                    r.last_seen = now;
                }
            }
            Cmd::Leave(done) => {
                self.flush_batches();
                let _ = self.to_pub.send(PubCmd::Leave(done));
            }
            Cmd::LeaseLost => {
                warn!("cluster: our lease ran out (frozen or cut off?); resynchronising");
                self.resync();
            }
        }
        // `kefu status`'s view is rebuilt with membership (every lease / 3), not for every
        // batch: a node first heard of in a batch shows at the next membership read.
        if !incoming {
            self.publish_view();
        }
    }

    /// Start a new epoch: every link is rebuilt, so every worker on both sides replays its
    /// clients to the other.
    fn resync(&mut self) {
        // What waits was framed under the old epoch: it goes before the new one is announced.
        self.flush_batches();
        let now = crate::cluster::now_micros();
        self.epoch = now.max(self.epoch + 1);
        let _ = self.to_pub.send(PubCmd::Epoch(self.epoch));
        let pairs: Vec<((u64, u64), usize)> = self.live.iter().map(|(k, v)| (*k, *v)).collect();
        for ((l, r), slot) in pairs {
            self.teardown(slot);
            let w = self
                .nodes
                .get(&node_of(r))
                .and_then(|n| n.workers.get(&r))
                .map(|w| w.0)
                .unwrap_or(0);
            self.ensure_link(l, r, w);
        }
    }

    fn set_local(&mut self, ws: Vec<(u64, u16)>) {
        let new: BTreeMap<u64, u16> = ws.into_iter().collect();
        let gone: Vec<u64> = self
            .local
            .keys()
            .filter(|i| !new.contains_key(i))
            .copied()
            .collect();
        for inc in gone {
            let slots: Vec<usize> = self
                .links
                .iter()
                .filter(|(_, l)| l.local == inc)
                .map(|(s, _)| s)
                .collect();
            for s in slots {
                self.remove(s);
            }
        }
        let added: Vec<u64> = new
            .keys()
            .filter(|i| !self.local.contains_key(i))
            .copied()
            .collect();
        self.local = new;
        let remotes: Vec<(u64, u16)> = self
            .nodes
            .values()
            .flat_map(|n| n.workers.iter().map(|(i, w)| (*i, w.0)))
            .collect();
        for l in added {
            for &(r, w) in &remotes {
                self.ensure_link(l, r, w);
            }
        }
        let _ = self.to_pub.send(PubCmd::Workers(
            self.local.iter().map(|(i, w)| (*i, *w)).collect(),
        ));
    }

    /// Accept `epoch` for `node`: false if it is older than the one we know (a late batch).
    /// A newer epoch means the node resynchronised: our links to it are rebuilt.
    fn accept_epoch(&mut self, node: u8, epoch: u64) -> bool {
        let now = Instant::now();
        match self.nodes.get_mut(&node) {
            None => {
                info!("cluster: node {node} joined (epoch {epoch})");
                self.nodes.insert(
                    node,
                    Remote {
                        epoch,
                        name: String::new(),
                        workers: HashMap::new(),
                        gone: HashSet::new(),
                        last_seen: now,
                        rx_seq: None,
                    },
                );
                true
            }
            Some(r) if epoch == r.epoch => true,
            Some(r) if epoch < r.epoch => false,
            Some(r) => {
                info!(
                    "cluster: node {node} resynchronises (epoch {} -> {epoch})",
                    r.epoch
                );
                r.epoch = epoch;
                r.gone.clear();
                r.rx_seq = None;
                r.last_seen = now;
                let workers: Vec<(u64, u16)> = r.workers.iter().map(|(i, w)| (*i, w.0)).collect();
                for (inc, w) in workers {
                    let slots: Vec<(u64, usize)> = self
                        .live
                        .iter()
                        .filter(|((_, rr), _)| *rr == inc)
                        .map(|((l, _), s)| (*l, *s))
                        .collect();
                    for (l, s) in slots {
                        self.teardown(s);
                        self.ensure_link(l, inc, w);
                    }
                }
                true
            }
        }
    }

    /// A batch another node published to us.
    fn incoming(&mut self, b: &[u8]) {
        let (h, recs) = match wire::decode(b) {
            Ok(v) => v,
            Err(e) => {
                warn!("cluster: dropping a batch: {e}");
                return;
            }
        };
        if h.node == self.node || h.node == 0 || !self.accept_epoch(h.node, h.epoch) {
            return;
        }
        let Some(r) = self.nodes.get_mut(&h.node) else {
            return;
        };
        match r.rx_seq {
            Some(s) if h.seq <= s => return,
            Some(s) if h.seq > s + 1 => {
                r.rx_seq = Some(h.seq);
                warn!(
                    "cluster: {} batch(es) from node {} lost; resynchronising",
                    h.seq - s - 1,
                    h.node
                );
                self.resync();
            }
            _ => r.rx_seq = Some(h.seq),
        }
        let now = Instant::now();
        // Each link is written once per batch, after all of its records are queued: a batch
        // of many frames for one worker is one write, not one per frame.
        let mut touched: Vec<usize> = Vec::new();
        for rec in recs {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    warn!("cluster: batch from node {}: {e}", h.node);
                    break;
                }
            };
            // A node speaks only for its own workers, to ours.
            if node_of(rec.from) != h.node || !self.local.contains_key(&rec.to) {
                continue;
            }
            let Some(r) = self.nodes.get_mut(&h.node) else {
                return;
            };
            if r.gone.contains(&rec.from) {
                continue;
            }
            r.workers.entry(rec.from).or_insert((rec.from_worker, now));
            if let Some(slot) = self.ensure_link(rec.to, rec.from, rec.from_worker) {
                self.queue_link(slot, rec.frame);
                if !touched.contains(&slot) {
                    touched.push(slot);
                }
            }
        }
        for slot in touched {
            self.write_out(slot);
        }
    }

    /// Leases read from Redis: nodes and workers appear and go.
    fn membership(&mut self, leases: Vec<Lease>) {
        let now = Instant::now();
        let mut seen = HashSet::new();
        for l in leases {
            if l.node == self.node || l.node == 0 || !self.accept_epoch(l.node, l.epoch) {
                continue;
            }
            seen.insert(l.node);
            let Some(r) = self.nodes.get_mut(&l.node) else {
                continue;
            };
            r.last_seen = now;
            r.name = l.name.clone();
            let listed: HashSet<u64> = l.workers.iter().map(|w| w.0).collect();
            let lease = self.lease;
            let ended: Vec<u64> = r
                .workers
                .iter()
                .filter(|(i, w)| !listed.contains(i) && now.duration_since(w.1) > lease)
                .map(|(i, _)| *i)
                .collect();
            for &(inc, w) in &l.workers {
                if node_of(inc) != l.node || r.gone.contains(&inc) {
                    continue;
                }
                r.workers.entry(inc).or_insert((w, now));
            }
            for inc in &ended {
                r.workers.remove(inc);
                r.gone.insert(*inc);
            }
            // New workers, and links a worker closed by itself (it found a frame it could not
            // decode), are linked now.
            let all: Vec<(u64, u16)> = r.workers.iter().map(|(i, w)| (*i, w.0)).collect();
            for inc in ended {
                self.drop_remote_worker(inc);
            }
            let locals: Vec<u64> = self.local.keys().copied().collect();
            for (inc, w) in all {
                for &l in &locals {
                    self.ensure_link(l, inc, w);
                }
            }
        }
        let grace = self.lease / 2;
        let dead: Vec<u8> = self
            .nodes
            .iter()
            .filter(|(n, r)| !seen.contains(n) && now.duration_since(r.last_seen) > grace)
            .map(|(n, _)| *n)
            .collect();
        for n in dead {
            if let Some(r) = self.nodes.remove(&n) {
                info!(
                    "cluster: node {n} ({}) is gone: its lease ran out; dropping its {} worker(s)",
                    r.name,
                    r.workers.len()
                );
                for inc in r.workers.keys() {
                    self.drop_remote_worker(*inc);
                }
                self.batches.remove(&n);
                let _ = self.to_pub.send(PubCmd::DropNode(n));
            }
        }
    }

    fn drop_remote_worker(&mut self, inc: u64) {
        let slots: Vec<usize> = self
            .links
            .iter()
            .filter(|(_, l)| l.remote == inc && matches!(l.state, LinkState::Live))
            .map(|(s, _)| s)
            .collect();
        for s in slots {
            self.teardown(s);
        }
    }

    /// The live link between `local` and `remote`, made (and handed over) if missing.
    fn ensure_link(&mut self, local: u64, remote: u64, remote_worker: u16) -> Option<usize> {
        if !self.local.contains_key(&local) {
            return None;
        }
        if let Some(&s) = self.live.get(&(local, remote)) {
            return Some(s);
        }
        let (ours, theirs) = match std::os::unix::net::UnixStream::pair() {
            Ok(p) => p,
            Err(e) => {
                warn!("cluster: socketpair: {e}");
                return None;
            }
        };
        if ours.set_nonblocking(true).is_err() {
            return None;
        }
        let mut sock = UnixStream::from_std(ours);
        let entry = self.links.vacant_entry();
        let slot = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut sock, Token(slot), Interest::READABLE)
        {
            warn!("cluster: register link: {e}");
            return None;
        }
        entry.insert(RLink {
            local,
            remote,
            sock,
            inbuf: Vec::new(),
            out: Vec::new(),
            state: LinkState::Live,
            shut: false,
            wants_write: false,
        });
        self.live.insert((local, remote), slot);
        let h = Handover {
            local,
            remote,
            remote_worker,
            fd: theirs.into(),
        };
        match self
            .draining
            .get(&(local, remote))
            .and_then(|&d| self.links.get_mut(d))
        {
            Some(RLink {
                state: LinkState::Draining { then },
                ..
            }) => then.push(h),
            _ => self.hand_over(h),
        }
        Some(slot)
    }

    fn hand_over(&mut self, h: Handover) {
        if self.to_master.send(h).is_ok() {
            let _ = self.master_waker.wake();
        }
    }

    /// Shut our side of a live link: the worker forgets the remote worker's clients and
    /// closes its end, which ends the link here (see `read_link`).
    fn teardown(&mut self, slot: usize) {
        let Some(l) = self.links.get_mut(slot) else {
            return;
        };
        if !matches!(l.state, LinkState::Live) {
            return;
        }
        let pair = (l.local, l.remote);
        // Frames already queued still go first: the side is shut once they are written.
        l.state = LinkState::Draining { then: Vec::new() };
        if self.live.get(&pair) == Some(&slot) {
            self.live.remove(&pair);
        }
        self.write_out(slot);
        self.draining.insert(pair, slot);
    }

    /// Forget a link at once (its worker is gone, or it misbehaved), handing over what waited.
    fn remove(&mut self, slot: usize) {
        let Some(mut l) = self.links.try_remove(slot) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut l.sock);
        let pair = (l.local, l.remote);
        if self.live.get(&pair) == Some(&slot) {
            self.live.remove(&pair);
        }
        if self.draining.get(&pair) == Some(&slot) {
            self.draining.remove(&pair);
        }
        if let LinkState::Draining { then } = l.state {
            for h in then {
                self.hand_over(h);
            }
        }
    }

    fn read_link(&mut self, slot: usize) {
        loop {
            let Some(l) = self.links.get_mut(slot) else {
                return;
            };
            let n = match l.sock.read(&mut self.scratch) {
                Ok(0) => return self.remove(slot),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.remove(slot),
            };
            l.inbuf.extend_from_slice(&self.scratch[..n]);
            let (local, remote) = (l.local, l.remote);
            let local_worker = self.local.get(&local).copied().unwrap_or(0);
            let mut buf = std::mem::take(&mut l.inbuf);
            let mut at = 0;
            let mut bad = false;
            loop {
                match wire::frame_len(&buf[at..]) {
                    Ok(Some(len)) if at + len <= buf.len() => {
                        let frame = &buf[at..at + len];
                        self.push_record(local, local_worker, remote, frame);
                        at += len;
                    }
                    Ok(_) => break,
                    Err(e) => {
                        warn!("cluster: link from worker {local:x}: {e}; dropping it");
                        bad = true;
                        break;
                    }
                }
            }
            if bad {
                return self.remove(slot);
            }
            buf.drain(..at);
            if let Some(l) = self.links.get_mut(slot) {
                l.inbuf = buf;
            }
        }
    }

    fn push_record(&mut self, local: u64, local_worker: u16, remote: u64, frame: &[u8]) {
        let node = node_of(remote);
        let b = self.batches.entry(node).or_insert_with(|| {
            let mut v = Vec::with_capacity(4096);
            wire::begin(
                &mut v,
                Header {
                    node: self.node,
                    epoch: self.epoch,
                    seq: 0,
                },
            );
            v
        });
        wire::push(b, local, local_worker, remote, frame);
        if b.len() >= BATCH_MAX {
            if let Some(b) = self.batches.remove(&node) {
                let _ = self.to_pub.send(PubCmd::Publish(vec![(node, b)]));
            }
        }
    }

    /// Hand this turn's batches to the publisher, all nodes' at once (it sends them in one
    /// round trip).
    fn flush_batches(&mut self) {
        if self.batches.is_empty() {
            return;
        }
        let bs = std::mem::take(&mut self.batches).into_iter().collect();
        let _ = self.to_pub.send(PubCmd::Publish(bs));
    }

    /// Queue `frame` on a link (written by [`Self::write_out`]); a worker that lets its
    /// link fill up past [`LINK_OUT_MAX`] loses it.
    fn queue_link(&mut self, slot: usize, frame: &[u8]) {
        let Some(l) = self.links.get_mut(slot) else {
            return;
        };
        l.out.extend_from_slice(frame);
        if l.out.len() > LINK_OUT_MAX {
            warn!(
                "cluster: worker {:x} does not read its link; dropping it",
                l.local
            );
            self.remove(slot);
        }
    }

    fn write_out(&mut self, slot: usize) {
        let Some(l) = self.links.get_mut(slot) else {
            return;
        };
        let mut blocked = false;
        while !l.out.is_empty() {
            match l.sock.write(&l.out) {
                Ok(n) => {
                    l.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    blocked = true;
                    break;
                }
                // The read side sees the failure and removes the link.
                Err(_) => return,
            }
        }
        if blocked != l.wants_write {
            l.wants_write = blocked;
            let interest = if blocked {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut l.sock, Token(slot), interest)
                .is_err()
            {
                return self.remove(slot);
            }
        }
        if blocked {
            return;
        }
        if matches!(l.state, LinkState::Draining { .. }) && !l.shut {
            l.shut = true;
            let _ = l.sock.shutdown(Shutdown::Write);
        }
    }

    fn publish_view(&mut self) {
        let nodes = self
            .nodes
            .iter()
            .map(|(n, r)| NodeView {
                node: *n,
                name: r.name.clone(),
                epoch: r.epoch,
                workers: r.workers.keys().copied().collect(),
                seen_ms_ago: r.last_seen.elapsed().as_millis() as u64,
            })
            .collect();
        if let Ok(mut v) = self.view.lock() {
            v.epoch = self.epoch;
            v.nodes = nodes;
            v.links = self.live.len();
        }
    }
}
