//! The Redis side of a node: the publisher thread (batches to other nodes, our lease, reading
//! every lease) and the subscriber thread (batches to us). Both block on Redis, on their own
//! threads only; the relay hears from them over a channel and a waker.

use super::{wire, Cmd, Lease, PubCmd, View};
use crate::{info, warn};
use mio::Waker;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time to connect to Redis, and to wait for an answer, before the connection counts as lost.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between reconnection attempts.
const RETRY: Duration = Duration::from_millis(200);
/// Pause before publishing again to a node that had no subscriber.
const NO_LISTENER_RETRY: Duration = Duration::from_millis(20);
/// Largest batch made by appending queued batches for one node to each other.
const MERGE_MAX: usize = 1 << 20;
/// Most bytes of batches sent to Redis in one pipelined round trip.
const PIPELINE_MAX: usize = 4 << 20;
/// Bytes held for other nodes while Redis is away; past it the oldest batches are dropped
/// (the receivers then see a gap and resynchronise).
const HELD_MAX: usize = 256 << 20;
/// How long the answers to a round trip may stay unread when no new batch comes meanwhile.
const ANSWERS_WAIT: Duration = Duration::from_millis(10);

/// Key and channel names under the configured prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.into(),
        }
    }
    fn lease(&self, node: u8) -> String {
        format!("{}:node:{node}", self.prefix)
    }
    fn members(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    pub(super) fn channel(&self, node: u8) -> String {
        format!("{}:to:{node}", self.prefix)
    }
}

fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    let c = redis::Client::open(url)?.get_connection_with_timeout(IO_TIMEOUT)?;
    c.set_read_timeout(Some(IO_TIMEOUT))?;
    c.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(c)
}

/// The server's `run_id`, or None if `INFO` fails or lacks it (every Redis since 2.4 has
/// it; without it a reconnection counts as a restart, as it did before `run_id` was read).
fn server_run_id(c: &mut redis::Connection) -> Option<String> {
    let info: String = redis::cmd("INFO").arg("server").query(c).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|v| v.trim().to_string())
}

/// The thread that receives this node's channel.
#[derive(Debug)]
pub(super) struct Subscriber {
    pub(super) url: String,
    pub(super) channel: String,
    pub(super) to_relay: Sender<Cmd>,
    pub(super) waker: Arc<Waker>,
}

impl Subscriber {
    pub(super) fn run(self) {
        let mut was_up = false;
        loop {
            match self.session(&mut was_up) {
                Ok(()) => return,
                Err(e) => {
                    if was_up {
                        warn!("cluster: subscription to {} lost: {e}", self.channel);
                        was_up = false;
                    }
                }
            }
            // Own thread, not an event loop: waiting here delays nobody.
            std::thread::sleep(RETRY);
        }
    }

    /// Subscribe and forward until the connection fails (Err) or the relay is gone (Ok).
    fn session(&self, was_up: &mut bool) -> redis::RedisResult<()> {
        let mut c =
            redis::Client::open(self.url.as_str())?.get_connection_with_timeout(IO_TIMEOUT)?;
        // Batches may be far apart: only a broken connection ends the wait.
        c.set_read_timeout(None)?;
        let mut ps = c.as_pubsub();
        ps.subscribe(&self.channel)?;
        if !*was_up {
            info!("cluster: subscribed to {}", self.channel);
        }
        *was_up = true;
        loop {
            let m = ps.get_message()?;
            if self
                .to_relay
                .send(Cmd::Incoming(m.get_payload_bytes().to_vec()))
                .is_err()
            {
                return Ok(());
            }
            let _ = self.waker.wake();
        }
    }
}

/// The publisher's connection to Redis.
enum RedisLink {
    /// Not connected yet since the start.
    Never,
    /// Connected.
    Up {
        con: redis::Connection,
        /// The server's `run_id` (`INFO server`), which changes when Redis restarts.
        run_id: Option<String>,
        lease: OurLease,
    },
    /// Lost: the next connection is a reconnection (the relay is told).
    Down,
}

/// Our lease, as the current Redis server knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OurLease {
    /// Not written to this Redis server yet: if it is missing, this is the first start or
    /// Redis lost it (a restart), not a sign that we were away.
    Unwritten,
    /// Written to this Redis server (over this connection or an earlier one to the same
    /// server): missing at a renewal, it ran out while we were away (stalled or cut off
    /// longer than the lease), so the others have dropped us.
    Written,
}

/// A node's part of the round trip in flight.
#[derive(Debug)]
struct Flight {
    node: u8,
    /// Batches sent: answers to read.
    sent: usize,
    /// How many of them are still at the front of the node's queue (fewer once the oldest
    /// were dropped for [`HELD_MAX`], none once the node was dropped).
    front: usize,
}

/// The thread that publishes batches and keeps the lease.
pub(super) struct Publisher {
    url: String,
    keys: Keys,
    me: Lease,
    lease: Duration,
    rx: Receiver<PubCmd>,
    to_relay: Sender<Cmd>,
    waker: Arc<Waker>,
    view: Arc<Mutex<View>>,
    redis: RedisLink,
    /// The `run_id` of the Redis server our lease was last written to. A reconnection to the
    /// same server (a network cut outlasting the read timeout) keeps `OurLease::Written`, so
    /// a lease that ran out meanwhile is seen as lost; a new `run_id` is a restart.
    lease_on: Option<String>,
    queues: BTreeMap<u8, VecDeque<Vec<u8>>>,
    /// The round trip sent and not answered yet: per node, how many batches at the front of
    /// its queue it carried, and when it went. Its answers are read before the next round
    /// trip (or a lease renewal), by when they are normally there already: at a high rate
    /// the thread then wakes once per batch handed over instead of twice.
    flying: Option<(Vec<Flight>, Instant)>,
    held: usize,
    seq: HashMap<u8, u64>,
    wait_until: HashMap<u8, Instant>,
    next_tick: Instant,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("node", &self.me.node)
            .field("connected", &matches!(self.redis, RedisLink::Up { .. }))
            .field("held", &self.held)
            .finish()
    }
}

impl Publisher {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        url: String,
        keys: Keys,
        me: Lease,
        lease: Duration,
        rx: Receiver<PubCmd>,
        to_relay: Sender<Cmd>,
        waker: Arc<Waker>,
        view: Arc<Mutex<View>>,
    ) -> Publisher {
        Publisher {
            url,
            keys,
            me,
            lease,
            rx,
            to_relay,
            waker,
            view,
            redis: RedisLink::Never,
            lease_on: None,
            queues: BTreeMap::new(),
            flying: None,
            held: 0,
            seq: HashMap::new(),
            wait_until: HashMap::new(),
            next_tick: Instant::now(),
        }
    }

    fn tell(&self, c: Cmd) {
        if self.to_relay.send(c).is_ok() {
            let _ = self.waker.wake();
        }
    }

    pub(super) fn run(mut self) {
        loop {
            let now = Instant::now();
            let mut wake = self.next_tick;
            if let Some((_, at)) = &self.flying {
                wake = wake.min(*at + ANSWERS_WAIT);
            }
            if self
                .queues
                .iter()
                .any(|(n, q)| q.len() > self.in_flight(*n))
            {
                let soonest = self
                    .queues
                    .iter()
                    .filter(|(n, q)| q.len() > self.in_flight(**n))
                    .map(|(n, _)| self.wait_until.get(n).copied().unwrap_or(now))
                    .min()
                    .unwrap_or(now);
                let retry = if !matches!(self.redis, RedisLink::Up { .. }) {
                    now + RETRY
                } else {
                    soonest
                };
                wake = wake.min(retry);
            }
            match self.rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(cmd) => {
                    if !self.on_cmd(cmd) {
                        return;
                    }
                    while let Ok(cmd) = self.rx.try_recv() {
                        if !self.on_cmd(cmd) {
                            return;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if Instant::now() >= self.next_tick {
                self.next_tick = Instant::now() + self.lease / 3;
                self.tick();
            }
            self.publish();
        }
    }

    /// Batches at the front of `node`'s queue sent in the unanswered round trip.
    fn in_flight(&self, node: u8) -> usize {
        self.flying
            .as_ref()
            .and_then(|(plan, _)| plan.iter().find(|f| f.node == node))
            .map_or(0, |f| f.front)
    }

    /// False once we should stop.
    fn on_cmd(&mut self, cmd: PubCmd) -> bool {
        match cmd {
            PubCmd::Publish(bs) => {
                for (node, b) in bs {
                    self.enqueue(node, b);
                }
            }
            PubCmd::DropNode(node) => {
                if let Some(q) = self.queues.remove(&node) {
                    self.held -= q.iter().map(Vec::len).sum::<usize>();
                }
                // Its answers, when read, take nothing off a queue the node may get again.
                if let Some(f) = self.flight(node) {
                    f.front = 0;
                }
            }
            PubCmd::Workers(ws) => {
                self.me.workers = ws;
                // Others learn of new workers at once, not a tick later.
                self.next_tick = Instant::now();
            }
            PubCmd::Epoch(e) => {
                self.me.epoch = e;
                self.next_tick = Instant::now();
            }
            PubCmd::Leave(done) => {
                self.publish();
                self.answers();
                if let RedisLink::Up { con: c, .. } = &mut self.redis {
                    let _: redis::RedisResult<()> = redis::cmd("DEL")
                        .arg(self.keys.lease(self.me.node))
                        .query(c);
                }
                let _ = done.send(());
                return false;
            }
        }
        true
    }

    fn enqueue(&mut self, node: u8, mut b: Vec<u8>) {
        let flying = self.in_flight(node);
        let q = self.queues.entry(node).or_default();
        // Batches that queued up while we waited on Redis (or that Redis could not deliver
        // yet) and come from the same epoch go out as one: its records are appended to the
        // last unsent batch, which keeps its sequence number. One pub/sub message then
        // carries what several hand-overs brought, at no added latency.
        // A batch already sent is never appended to.
        let merge = q.len() > flying
            && q.back().is_some_and(|last| {
                last.len() + b.len() <= MERGE_MAX
                    && last.get(..wire::HEADER_LEN - 8) == b.get(..wire::HEADER_LEN - 8)
            });
        if merge && b.len() > wire::HEADER_LEN {
            if let Some(last) = q.back_mut() {
                last.extend_from_slice(&b[wire::HEADER_LEN..]);
                self.held += b.len() - wire::HEADER_LEN;
            }
        } else {
            let s = self.seq.entry(node).or_insert(0);
            *s += 1;
            wire::set_seq(&mut b, *s);
            self.held += b.len();
            q.push_back(b);
        }
        let mut dropped = 0;
        while self.held > HELD_MAX {
            let Some(old) = q.pop_front() else { break };
            self.held -= old.len();
            dropped += 1;
        }
        if dropped > 0 {
            if let Some(f) = self.flight(node) {
                f.front = f.front.saturating_sub(dropped);
            }
        }
    }

    fn flight(&mut self, node: u8) -> Option<&mut Flight> {
        self.flying
            .as_mut()
            .and_then(|(plan, _)| plan.iter_mut().find(|f| f.node == node))
    }

    /// The connection, made first if there is none; None if Redis cannot be reached.
    fn conn(&mut self) -> Option<(&mut redis::Connection, OurLease)> {
        if !matches!(self.redis, RedisLink::Up { .. }) {
            match connect(&self.url) {
                Ok(con) => {
                    if matches!(self.redis, RedisLink::Down) {
                        info!("cluster: reconnected to Redis");
                        self.tell(Cmd::Reconnected);
                    }
                    let mut con = con;
                    let run_id = server_run_id(&mut con);
                    let lease = if run_id.is_some() && run_id == self.lease_on {
                        OurLease::Written
                    } else {
                        OurLease::Unwritten
                    };
                    self.redis = RedisLink::Up { con, run_id, lease };
                }
                Err(_) => {
                    self.set_up(false);
                    return None;
                }
            }
        }
        match &mut self.redis {
            RedisLink::Up { con, lease, .. } => Some((con, *lease)),
            RedisLink::Never | RedisLink::Down => None,
        }
    }

    fn set_up(&self, up: bool) {
        if let Ok(mut v) = self.view.lock() {
            v.redis_up = up;
        }
    }

    fn lost(&mut self, e: redis::RedisError) {
        if matches!(self.redis, RedisLink::Up { .. }) {
            warn!("cluster: Redis connection lost: {e}");
        }
        self.redis = RedisLink::Down;
        // Unanswered batches are sent again over the next connection (a receiver drops a
        // sequence number it has seen).
        self.flying = None;
        self.set_up(false);
    }

    /// Renew our lease and read everyone's.
    fn tick(&mut self) {
        // The connection answers in order: the round trip in flight is read first.
        self.answers();
        let keys = self.keys.clone();
        let node = self.me.node;
        let key = keys.lease(node);
        let members = self.keys.members();
        let ms = self.lease.as_millis() as u64;
        let val = serde_json::to_vec(&self.me).unwrap_or_default();
        let Some((c, ours)) = self.conn() else {
            return;
        };
        let res = (|| -> redis::RedisResult<(bool, Vec<Option<Vec<u8>>>)> {
            // XX: renew only; a missing key says our lease ran out before this renewal.
            let renewed: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&val)
                .arg("XX")
                .arg("PX")
                .arg(ms)
                .query(c)?;
            if renewed.is_none() {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&val)
                    .arg("PX")
                    .arg(ms)
                    .query::<()>(c)?;
            }
            let ids: Vec<u16> = redis::pipe()
                .cmd("SADD")
                .arg(&members)
                .arg(node)
                .ignore()
                .cmd("SMEMBERS")
                .arg(&members)
                .query::<(Vec<u16>,)>(c)?
                .0;
            let keys: Vec<String> = ids
                .iter()
                .filter_map(|&n| u8::try_from(n).ok())
                .map(|n| keys.lease(n))
                .collect();
            let vals: Vec<Option<Vec<u8>>> = if keys.is_empty() {
                Vec::new()
            } else {
                redis::cmd("MGET").arg(&keys).query(c)?
            };
            Ok((renewed.is_some(), vals))
        })();
        match res {
            Ok((renewed, vals)) => {
                self.set_up(true);
                if !renewed && ours == OurLease::Written {
                    self.tell(Cmd::LeaseLost);
                }
                if let RedisLink::Up { lease, run_id, .. } = &mut self.redis {
                    *lease = OurLease::Written;
                    self.lease_on.clone_from(run_id);
                }
                let leases = vals
                    .into_iter()
                    .flatten()
                    .filter_map(|v| serde_json::from_slice::<Lease>(&v).ok())
                    .collect();
                self.tell(Cmd::Membership(leases));
            }
            Err(e) => self.lost(e),
        }
    }

    /// Publish what waits, in order per node; a node with no subscriber (restarting, or
    /// between Redis reconnections) keeps its queue and is tried again shortly. Everything
    /// that waits, for every node, goes out pipelined (up to [`PIPELINE_MAX`] bytes per round
    /// trip), so a burst costs one round trip, not one per batch or per node. The answers are
    /// read before the next round trip ([`Self::answers`]), not waited for here.
    fn publish(&mut self) {
        loop {
            self.answers();
            if self.flying.is_some() {
                // Its answers could not be read: the connection is lost.
                return;
            }
            let now = Instant::now();
            let mut pipe = redis::pipe();
            let mut plan: Vec<Flight> = Vec::new();
            let mut bytes = 0;
            let mut more = false;
            for (node, q) in &self.queues {
                if q.is_empty() || self.wait_until.get(node).is_some_and(|t| *t > now) {
                    continue;
                }
                let channel = self.keys.channel(*node);
                let mut n = 0;
                for b in q.iter() {
                    if bytes > 0 && bytes + b.len() > PIPELINE_MAX {
                        break;
                    }
                    pipe.cmd("PUBLISH").arg(&channel).arg(b.as_slice());
                    n += 1;
                    bytes += b.len();
                }
                if n > 0 {
                    plan.push(Flight {
                        node: *node,
                        sent: n,
                        front: n,
                    });
                }
                if n < q.len() {
                    more = true;
                    break;
                }
            }
            if plan.is_empty() {
                return;
            }
            if !matches!(self.redis, RedisLink::Up { .. }) && self.conn().is_none() {
                return;
            }
            let RedisLink::Up { con: c, .. } = &mut self.redis else {
                return;
            };
            if let Err(e) = c.send_packed_command(&pipe.get_packed_pipeline()) {
                self.lost(e);
                return;
            }
            self.flying = Some((plan, now));
            if !more {
                return;
            }
        }
    }

    /// Read the answers to the round trip in flight: batches are taken off in order up to
    /// the first that reached nobody; it and the rest are sent again shortly.
    fn answers(&mut self) {
        let Some((plan, _)) = self.flying.take() else {
            return;
        };
        let RedisLink::Up { con: c, .. } = &mut self.redis else {
            return;
        };
        let now = Instant::now();
        for f in plan {
            let mut ok: usize = 0;
            let mut reached_all = true;
            for _ in 0..f.sent {
                match c.recv_response() {
                    Ok(redis::Value::Int(r)) if reached_all && r > 0 => ok += 1,
                    Ok(redis::Value::Int(_)) => reached_all = false,
                    Ok(other) => {
                        let e = io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("unexpected answer to PUBLISH: {other:?}"),
                        );
                        return self.lost(e.into());
                    }
                    Err(e) => return self.lost(e),
                }
            }
            // Batches dropped from the front meanwhile were the oldest of those sent.
            let done = ok.saturating_sub(f.sent - f.front);
            if let Some(q) = self.queues.get_mut(&f.node) {
                for b in q.drain(..done.min(q.len())) {
                    self.held -= b.len();
                }
            }
            if ok < f.sent {
                self.wait_until.insert(f.node, now + NO_LISTENER_RETRY);
            } else {
                self.wait_until.remove(&f.node);
            }
        }
    }
}
