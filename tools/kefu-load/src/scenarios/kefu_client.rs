//! One thread of the `kefu` scenario: its agents and visitors, their logins, the paced
//! visitor messages, the agents' replies, and everything measured on receipt.

use super::chat::{self, Pacer};
use super::kefu_proto::{self, Push, Req};
use crate::conn::{Batch, Event, Kind, Net};
use crate::runner::{self, LoadError, Phase, SetupTally, Shared, Tracker};
use crate::stats;
use crate::target::Target;
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Seconds between heartbeats (the protocol asks for one every ~25 s).
const BEAT_EVERY: Duration = Duration::from_secs(20);

/// Read-only run parameters plus the cross-thread setup state.
pub struct Plan<'a> {
    /// Server.
    pub target: Arc<Target>,
    /// Business id.
    pub bid: &'a str,
    /// `(agent id, token)` by agent index; agents are global clients `0..agents`.
    pub agents: &'a [(String, String)],
    /// Agent id → global index.
    pub agent_index: &'a HashMap<String, usize>,
    /// Agents plus visitors.
    pub total: usize,
    /// Thread count.
    pub threads: usize,
    /// Connection attempts per second per thread.
    pub connect_rate: f64,
    /// Per-connection setup timeout.
    pub setup_limit: Duration,
    /// Total visitor messages per second.
    pub rate: f64,
    /// An agent replies to every `reply_every`-th visitor message it gets (0 = never).
    pub reply_every: u64,
    /// Set by the main thread once every agent is logged in: visitors may connect.
    pub visitors_go: &'a AtomicBool,
    /// Visitors assigned to an agent during setup (all threads).
    pub routed: &'a AtomicUsize,
    /// Visitors told to wait in the queue during setup (all threads).
    pub queued: &'a AtomicUsize,
}

#[derive(Default)]
struct Peer {
    global: usize,
    alive: bool,
    ready: bool,
    logged_in: bool,
    /// Visitor: opening message acked with this conversation.
    conv_id: Option<i64>,
    /// Visitor: assigned agent (global index).
    agent: Option<usize>,
    /// Visitor: told to wait.
    waiting: bool,
    /// Next load message seq of this sender.
    next_seq: u64,
    /// Agent: visitor messages received (reply pacing).
    received: u64,
    /// Per conversation: seqs seen on this connection.
    convs: HashMap<i64, ConvSeen>,
}

#[derive(Default)]
struct ConvSeen {
    max: i64,
    min: i64,
    seqs: HashSet<i64>,
}

struct Pending {
    send_us: u64,
    /// Who must receive it (global index), if anyone.
    receiver: Option<usize>,
}

/// What one thread measured.
#[derive(Default)]
pub struct Tally {
    /// Load messages sent by visitors / by agents.
    pub sent_visitor: u64,
    /// Agent replies sent.
    pub sent_agent: u64,
    /// Load messages acked.
    pub acked: u64,
    /// Send → ack, µs.
    pub ack_hist: Option<Histogram<u64>>,
    /// Visitor → agent delivery, µs.
    pub v2a_hist: Option<Histogram<u64>>,
    /// Agent → visitor delivery, µs.
    pub a2v_hist: Option<Histogram<u64>>,
    /// Acked messages that must reach someone: (receiver, sender, seq).
    pub owed: Vec<(usize, usize, u64)>,
    /// Unique deliveries received: (receiver, sender, seq).
    pub got: HashSet<(usize, usize, u64)>,
    /// Same sender:seq twice at one receiver.
    pub duplicated: u64,
    /// Copies of one's own message (the server pushes every message to both sides).
    pub sender_echoes: u64,
    /// A message arrived with a lower seq than one already seen on that connection.
    pub seq_out_of_order: u64,
    /// The same conversation seq twice on one connection.
    pub seq_duplicates: u64,
    /// Seqs missing inside the seen range, per connection and conversation, at the end.
    pub seq_gaps: u64,
    /// Messages that are not ours (opening texts, event messages).
    pub other_messages: u64,
    /// Error frames by code.
    pub errors: BTreeMap<String, u64>,
    /// Other pushes by method (assigned, waiting, queue_update, ...).
    pub pushes: BTreeMap<String, u64>,
    /// Frames that were not JSON objects.
    pub unexpected: u64,
    /// Sends refused by the local write backlog.
    pub backpressured: u64,
    /// Time of the last ack, µs since the epoch.
    pub last_ack_us: u64,
    /// Still unacked at the end.
    pub unacked: u64,
    /// Setup results.
    pub setup: SetupTally,
}

struct Worker<'p, 'a> {
    plan: &'p Plan<'a>,
    peers: Vec<Peer>,
    pending: HashMap<(usize, u64), Pending>,
    senders: Option<Vec<usize>>,
    rr: usize,
    pacer: Option<Pacer>,
    tracker: Tracker,
    t: Tally,
    ack_hist: Histogram<u64>,
    v2a_hist: Histogram<u64>,
    a2v_hist: Histogram<u64>,
}

/// Runs one thread's clients until `Phase::Stop`.
pub fn run_thread(plan: &Plan<'_>, thread: usize, shared: &Shared) -> Result<Tally, LoadError> {
    let mut net = Net::new(plan.target.clone(), thread as u64)?;
    let owned = runner::owned(thread, plan.threads, plan.total);
    let my_agents = owned.iter().filter(|&&g| g < plan.agents.len()).count();
    let mut launcher = runner::Launcher::new(owned, plan.connect_rate);
    launcher.limit_to(my_agents);
    let mut w = Worker {
        plan,
        peers: Vec::new(),
        pending: HashMap::new(),
        senders: None,
        rr: 0,
        pacer: None,
        tracker: Tracker::default(),
        t: Tally::default(),
        ack_hist: stats::new_hist(),
        v2a_hist: stats::new_hist(),
        a2v_hist: stats::new_hist(),
    };
    let mut batch = Batch::default();
    let mut last_expire = Instant::now();
    let mut last_beat = Instant::now();
    let mut released = false;
    loop {
        let phase = shared.phase();
        if phase == Phase::Stop {
            break;
        }
        if !released && plan.visitors_go.load(Ordering::Acquire) {
            launcher.limit_to(usize::MAX);
            released = true;
        }
        launcher.step(&mut net, &mut w.t.setup, shared);
        while w.peers.len() < launcher.local_to_global.len() {
            let global = launcher.local_to_global[w.peers.len()];
            w.peers.push(Peer {
                global,
                alive: true,
                ..Peer::default()
            });
        }
        if last_beat.elapsed() >= BEAT_EVERY {
            let beat = Req::Beat.to_json();
            for (id, p) in w.peers.iter().enumerate() {
                if p.alive && p.ready {
                    net.send(id, Kind::Text, beat.as_bytes());
                }
            }
            last_beat = Instant::now();
        }
        let idle = w.tick(&mut net, phase, shared);
        batch.clear();
        if last_expire.elapsed() >= Duration::from_millis(100) {
            net.expire_setup(plan.setup_limit, &mut batch);
            last_expire = Instant::now();
        }
        net.poll(Some(launcher.timeout(idle)), &mut batch)?;
        let mut got = 0u64;
        for ev in &batch.events {
            match *ev {
                Event::Open { id, setup_us } => {
                    w.t.setup.open(setup_us);
                    w.on_open(&mut net, id);
                }
                Event::Message {
                    id, start, end, at, ..
                } => {
                    got += 1;
                    w.on_frame(&mut net, id, batch.payload(start, end), at, phase, shared);
                }
                Event::Closed {
                    id,
                    was_open,
                    ref reason,
                } => {
                    let failed_setup = w.t.setup.closed(was_open, reason, shared);
                    if let Some(p) = w.peers.get_mut(id) {
                        p.alive = false;
                        if !failed_setup && !p.ready {
                            shared.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        if got > 0 {
            shared.received.fetch_add(got, Ordering::Relaxed);
        }
    }
    Ok(w.finish())
}

impl Worker<'_, '_> {
    fn is_agent(&self, local: usize) -> bool {
        self.peers[local].global < self.plan.agents.len()
    }

    fn on_open(&mut self, net: &mut Net, local: usize) {
        let g = self.peers[local].global;
        let req = match self.plan.agents.get(g) {
            Some((id, token)) => Req::Login {
                bid: self.plan.bid,
                customer_id: id,
                token,
            },
            None => Req::VisitorLogin {
                bid: self.plan.bid,
                page_url: "https://shop.example/load",
            },
        };
        net.send(local, Kind::Text, req.to_json().as_bytes());
    }

    fn mark_ready(&mut self, local: usize, shared: &Shared) {
        let p = &mut self.peers[local];
        if !p.ready {
            p.ready = true;
            shared.ready.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Visitor setup is complete once its opening message is acked and it was routed.
    fn check_visitor(&mut self, local: usize, shared: &Shared) {
        let p = &self.peers[local];
        if p.ready || p.conv_id.is_none() || !(p.agent.is_some() || p.waiting) {
            return;
        }
        if p.agent.is_some() {
            self.plan.routed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.plan.queued.fetch_add(1, Ordering::Relaxed);
        }
        self.mark_ready(local, shared);
    }

    fn count_push(&mut self, method: &str) {
        *self.t.pushes.entry(method.to_string()).or_default() += 1;
    }

    fn on_frame(
        &mut self,
        net: &mut Net,
        local: usize,
        bytes: &[u8],
        at: Instant,
        phase: Phase,
        shared: &Shared,
    ) {
        let Ok(m) = serde_json::from_slice::<Push<'_>>(bytes) else {
            self.t.unexpected += 1;
            return;
        };
        if let Some(code) = &m.code {
            *self.t.errors.entry(code.to_string()).or_default() += 1;
            if self.t.errors.values().sum::<u64>() <= 5 {
                eprintln!(
                    "[kefu] error frame on client {}: {}",
                    self.peers[local].global,
                    String::from_utf8_lossy(bytes)
                );
            }
            let seq = m.client_msg_id.as_deref().and_then(|s| s.parse().ok());
            if let Some(seq) = seq {
                if self.pending.remove(&(local, seq)).is_some() {
                    self.tracker.deliver();
                }
            }
            return;
        }
        let method = m.method.as_deref().unwrap_or("");
        match method {
            "login" => {
                self.peers[local].logged_in = true;
                self.mark_ready(local, shared);
            }
            "visitor_login" => {
                self.peers[local].logged_in = true;
                let req = Req::Send {
                    conv_id: None,
                    client_msg_id: "open",
                    kind: "text",
                    text: "hello, I have a question",
                };
                net.send(local, Kind::Text, req.to_json().as_bytes());
            }
            "ack" => self.on_ack(local, &m, at, shared),
            "message" => self.on_message(net, local, &m, at, phase, shared),
            "assigned" if !self.is_agent(local) => {
                self.count_push("assigned");
                let agent = m
                    .agent_id
                    .as_deref()
                    .and_then(|a| self.plan.agent_index.get(a).copied());
                self.peers[local].agent = agent;
                self.check_visitor(local, shared);
            }
            "waiting" => {
                self.count_push("waiting");
                self.peers[local].waiting = true;
                self.check_visitor(local, shared);
            }
            other => self.count_push(other),
        }
    }

    fn on_ack(&mut self, local: usize, m: &Push<'_>, at: Instant, shared: &Shared) {
        let id = m.client_msg_id.as_deref().unwrap_or("");
        if id == "open" {
            self.peers[local].conv_id = m.conv_id;
            self.check_visitor(local, shared);
            return;
        }
        let Some(seq) = id.parse::<u64>().ok() else {
            self.count_push("ack_unknown");
            return;
        };
        let Some(p) = self.pending.remove(&(local, seq)) else {
            self.count_push("ack_unknown");
            return;
        };
        self.tracker.deliver();
        self.t.acked += 1;
        let now = shared.us_at(at);
        stats::record(&mut self.ack_hist, now.saturating_sub(p.send_us));
        self.t.last_ack_us = self.t.last_ack_us.max(now);
        if let Some(r) = p.receiver {
            self.t.owed.push((r, self.peers[local].global, seq));
            self.tracker.expect(1);
        }
    }

    fn on_message(
        &mut self,
        net: &mut Net,
        local: usize,
        m: &Push<'_>,
        at: Instant,
        phase: Phase,
        shared: &Shared,
    ) {
        let (Some(conv), Some(seq)) = (m.conv_id, m.seq) else {
            self.count_push("message_without_seq");
            return;
        };
        // Per-connection, per-conversation seq order.
        let c = self.peers[local].convs.entry(conv).or_default();
        if c.seqs.is_empty() {
            c.min = seq;
            c.max = seq;
        }
        if !c.seqs.insert(seq) {
            self.t.seq_duplicates += 1;
        } else if seq < c.max {
            self.t.seq_out_of_order += 1;
        }
        c.max = c.max.max(seq);
        c.min = c.min.min(seq);

        let parsed = (m.kind.as_deref() == Some("text"))
            .then(|| m.text.as_deref().and_then(chat::parse_content))
            .flatten();
        let Some((sender, mseq, sent_us)) = parsed else {
            self.t.other_messages += 1;
            return;
        };
        let me = self.peers[local].global;
        if sender == me {
            self.t.sender_echoes += 1;
            return;
        }
        if !self.t.got.insert((me, sender, mseq)) {
            self.t.duplicated += 1;
            return;
        }
        self.tracker.deliver();
        let lat = shared.us_at(at).saturating_sub(sent_us);
        let agent = self.is_agent(local);
        stats::record(
            if agent {
                &mut self.v2a_hist
            } else {
                &mut self.a2v_hist
            },
            lat,
        );
        if !agent || phase != Phase::Run || self.plan.reply_every == 0 {
            return;
        }
        let p = &mut self.peers[local];
        p.received += 1;
        if p.received.is_multiple_of(self.plan.reply_every) {
            self.send_load(net, local, Some(conv), Some(sender), shared);
        }
    }

    /// Sends one load message `<me>:<seq>:<now_us>` from `local`; `receiver` must get it.
    fn send_load(
        &mut self,
        net: &mut Net,
        local: usize,
        conv_id: Option<i64>,
        receiver: Option<usize>,
        shared: &Shared,
    ) -> bool {
        let p = &mut self.peers[local];
        let seq = p.next_seq;
        let send_us = shared.now_us();
        let text = kefu_proto::content(p.global, seq, send_us);
        let id = seq.to_string();
        let req = Req::Send {
            conv_id,
            client_msg_id: &id,
            kind: "text",
            text: &text,
        };
        if !net.send(local, Kind::Text, req.to_json().as_bytes()) {
            self.t.backpressured += 1;
            return false;
        }
        p.next_seq += 1;
        self.pending
            .insert((local, seq), Pending { send_us, receiver });
        self.tracker.expect(1);
        if conv_id.is_some() {
            self.t.sent_agent += 1;
        } else {
            self.t.sent_visitor += 1;
        }
        true
    }

    /// Paced visitor sends during the run phase. Returns the poll timeout wanted.
    fn tick(&mut self, net: &mut Net, phase: Phase, shared: &Shared) -> Duration {
        self.tracker.publish(shared);
        if phase != Phase::Run {
            return Duration::from_millis(10);
        }
        if self.senders.is_none() {
            let senders: Vec<usize> = (0..self.peers.len())
                .filter(|&l| !self.is_agent(l) && self.peers[l].agent.is_some())
                .collect();
            let total = self.plan.routed.load(Ordering::Relaxed).max(1);
            self.pacer = Some(Pacer::new(
                self.plan.rate * senders.len() as f64 / total as f64,
            ));
            self.senders = Some(senders);
        }
        let senders = self.senders.take().unwrap_or_default();
        let Some(mut pacer) = self.pacer.take() else {
            return Duration::from_millis(10);
        };
        let due = if senders.is_empty() { 0 } else { pacer.due() };
        let mut misses = 0;
        for _ in 0..due {
            self.rr = (self.rr + 1) % senders.len();
            let local = senders[self.rr];
            let receiver = self.peers[local].agent;
            if self.peers[local].alive && self.send_load(net, local, None, receiver, shared) {
                pacer.sent();
            } else {
                misses += 1;
            }
        }
        pacer.skip(misses);
        let timeout = pacer.timeout();
        self.pacer = Some(pacer);
        self.senders = Some(senders);
        timeout
    }

    fn finish(mut self) -> Tally {
        for p in &self.peers {
            for c in p.convs.values() {
                let span = (c.max - c.min + 1).max(0) as u64;
                self.t.seq_gaps += span.saturating_sub(c.seqs.len() as u64);
            }
        }
        self.t.unacked = self.pending.len() as u64;
        self.t.ack_hist = Some(self.ack_hist);
        self.t.v2a_hist = Some(self.v2a_hist);
        self.t.a2v_hist = Some(self.a2v_hist);
        self.t
    }
}
