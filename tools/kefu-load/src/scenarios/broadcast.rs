//! `broadcast`: rooms of N clients, S senders per room saying to "all"; every member (the
//! sender too) must receive every message exactly once.

use super::chat::{self, ChatMsg, ChatThread, Client, Deliveries, Pacer, SayHandler};
use crate::conn::{Kind, Net};
use crate::runner::{self, LoadError, Phase, Shared};
use crate::stats::{round1, LatencySummary};
use crate::{check_connections, check_rate, check_seconds, Common, Outcome};
use clap::Args;
use serde_json::json;
use std::time::{Duration, Instant};

/// Options of the `broadcast` scenario.
#[derive(Args, Debug)]
pub struct BroadcastArgs {
    #[command(flatten)]
    common: Common,
    /// Number of rooms (room ids "1".."R").
    #[arg(long, default_value_t = 2)]
    rooms: usize,
    /// Clients per room.
    #[arg(long, default_value_t = 50)]
    room_size: usize,
    /// Senders per room (the first S members of each room).
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Total say messages per second over all senders (deliveries are this times room size).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Measured seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Most seconds to wait after sending stops for missing deliveries before counting them
    /// lost (ends as soon as all have arrived).
    #[arg(long, default_value_t = 10.0)]
    grace: f64,
    /// Connection attempts per second during setup.
    #[arg(long, default_value_t = 2000.0)]
    connect_rate: f64,
}

/// Growable bitset of received sequence numbers from one sender.
#[derive(Default, Clone)]
struct SeqSet {
    bits: Vec<u64>,
    count: u64,
}

impl SeqSet {
    /// Marks `seq`; false if it was already marked (a duplicate).
    fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let fresh = self.bits[word] & (1 << bit) == 0;
        self.bits[word] |= 1 << bit;
        self.count += fresh as u64;
        fresh
    }
}

struct Handler {
    room_size: usize,
    senders: usize,
    pacer: Pacer,
    /// Logged-in senders owned by this thread: (local id, global index, next seq).
    my_senders: Vec<(usize, usize, u64)>,
    rr: usize,
    /// Logged-in clients of this thread: (local id, global index).
    members: Vec<(usize, usize)>,
    /// Per local client: received seqs per sender slot.
    recv: Vec<Vec<SeqSet>>,
    d: Deliveries,
    misrouted: u64,
    bad_content: u64,
    backpressured: u64,
    /// Logged-in members per room (index = room), known once the run starts.
    room_members: Vec<u64>,
    msg: String,
}

impl SayHandler for Handler {
    fn on_login(&mut self, local: usize, client: &Client) {
        if client.global % self.room_size < self.senders {
            self.my_senders.push((local, client.global, 0));
        }
        self.members.push((local, client.global));
        if self.recv.len() <= local {
            self.recv.resize(local + 1, Vec::new());
        }
        self.recv[local] = vec![SeqSet::default(); self.senders];
    }

    fn on_say(
        &mut self,
        local: usize,
        me: &Client,
        msg: &ChatMsg<'_>,
        at: Instant,
        shared: &Shared,
    ) {
        let Some((sender, seq, ts)) = msg.content.as_deref().and_then(chat::parse_content) else {
            self.bad_content += 1;
            return;
        };
        let slot = sender % self.room_size;
        if sender / self.room_size != me.global / self.room_size || slot >= self.senders {
            self.misrouted += 1;
            return;
        }
        let Some(sets) = self.recv.get_mut(local).filter(|s| !s.is_empty()) else {
            // A say before our own login echo: the server broke the join order.
            self.misrouted += 1;
            return;
        };
        let fresh = sets[slot].insert(seq);
        self.d.record(fresh, ts, at, shared);
    }

    fn tick(
        &mut self,
        net: &mut Net,
        clients: &[Client],
        phase: Phase,
        shared: &Shared,
    ) -> Duration {
        // Publish every turn, also while draining, so the main thread sees deliveries settle.
        self.d.tracker.publish(shared);
        if phase != Phase::Run || self.my_senders.is_empty() {
            return Duration::from_millis(10);
        }
        if self.room_members.is_empty() {
            let Some(ids) = shared.id_snapshot.get() else {
                return Duration::from_millis(1);
            };
            self.room_members = ids
                .chunks(self.room_size)
                .map(|room| room.iter().filter(|id| id.is_some()).count() as u64)
                .collect();
        }
        let due = self.pacer.due();
        let mut misses = 0;
        for _ in 0..due {
            self.rr = (self.rr + 1) % self.my_senders.len();
            let (local, g, seq) = self.my_senders[self.rr];
            if !clients[local].alive {
                misses += 1;
                continue;
            }
            self.msg.clear();
            let ts = shared.now_us();
            use std::fmt::Write;
            let _ = write!(
                self.msg,
                r#"{{"type":"say","to_client_id":"all","content":"{g}:{seq}:{ts}"}}"#
            );
            if net.send(local, Kind::Text, self.msg.as_bytes()) {
                self.my_senders[self.rr].2 += 1;
                self.pacer.sent();
                self.d.tracker.expect(self.room_members[g / self.room_size]);
            } else {
                self.backpressured += 1;
                misses += 1;
            }
        }
        self.pacer.skip(misses);
        self.pacer.timeout()
    }
}

/// Runs the scenario.
pub fn run(a: &BroadcastArgs) -> Result<Outcome, LoadError> {
    let target = a.common.target()?;
    if a.rooms == 0 || a.room_size == 0 || a.senders == 0 || a.senders > a.room_size {
        return Err(LoadError::Usage(
            "need --rooms >= 1, --room-size >= 1 and 1 <= --senders <= --room-size".into(),
        ));
    }
    let total = a
        .rooms
        .checked_mul(a.room_size)
        .ok_or_else(|| LoadError::Usage("too many clients".into()))?;
    check_connections(total)?;
    let rate = check_rate("rate", a.rate)?;
    let connect_rate = check_rate("connect-rate", a.connect_rate)?;
    let duration = check_seconds("duration", a.duration)?;
    let grace = check_seconds("grace", a.grace)?;
    let server_pid = a.common.server_pid()?;
    let throttle = a.common.throttle()?;
    let threads = a.common.threads.min(total);
    let shared = Shared::new(total);
    let room_size = a.room_size;
    let room_of = move |g: usize| (g / room_size + 1).to_string();
    let total_senders = (a.rooms * a.senders) as f64;
    let setup_budget = Duration::from_secs_f64(total as f64 / connect_rate)
        + a.common.setup_limit()
        + Duration::from_secs(10);

    let worker = |t: usize| {
        let owned = runner::owned(t, threads, total);
        let my_senders = owned.iter().filter(|g| *g % room_size < a.senders).count();
        let mut h = Handler {
            room_size,
            senders: a.senders,
            pacer: Pacer::new(rate * my_senders as f64 / total_senders),
            my_senders: Vec::new(),
            rr: 0,
            members: Vec::new(),
            recv: Vec::new(),
            d: Deliveries::default(),
            misrouted: 0,
            bad_content: 0,
            backpressured: 0,
            room_members: Vec::new(),
            msg: String::with_capacity(128),
        };
        let p = ChatThread {
            thread: t,
            threads,
            total,
            connect_rate: connect_rate / threads as f64,
            setup_limit: a.common.setup_limit(),
            target: target.clone(),
            room_of: &room_of,
        };
        let (tally, counters) = chat::run_thread(&p, &shared, &mut h)?;
        Ok(((tally, counters), h))
    };

    let main = || {
        chat::run_main(
            &shared,
            total,
            setup_budget,
            server_pid,
            throttle,
            duration,
            grace,
        )
    };

    let (outs, (complete, measured, run_start_us, drained)) =
        runner::run_threads(threads, &shared, worker, main)?;
    // sent[g]: messages sender g said; received: unique seqs per logged-in client per sender slot.
    let mut sent = vec![0u64; total];
    let mut received: Vec<(usize, Vec<u64>)> = Vec::new();
    let mut d = Deliveries::default();
    let mut c = Counts::default();
    let mut setups = Vec::new();
    for (setup, h) in outs {
        setups.push(setup);
        d.merge(&h.d);
        c.misrouted += h.misrouted;
        c.bad_content += h.bad_content;
        c.backpressured += h.backpressured;
        for &(_, g, n) in &h.my_senders {
            sent[g] = n;
        }
        for &(local, g) in &h.members {
            received.push((g, h.recv[local].iter().map(|s| s.count).collect()));
        }
    }
    let (tally, counters) = chat::merge_setup(setups);
    let (mut expected, mut lost, mut excess) = (0u64, 0u64, 0u64);
    for (g, counts) in &received {
        let room_base = g / room_size * room_size;
        for (slot, &got) in counts.iter().enumerate() {
            let s = sent[room_base + slot];
            expected += s;
            lost += s.saturating_sub(got);
            excess += got.saturating_sub(s);
        }
    }
    let said: u64 = sent.iter().sum();
    let conns = tally.report();
    let (wall, gen_cpu, server) = match measured {
        Some((w, g, s)) => (w, Some(g), s),
        None => (0.0, None, None),
    };
    let per_s = d.per_s(run_start_us, wall);
    let per_server_cpu = server
        .as_ref()
        .filter(|s| s.cpu_s > 0.0)
        .map(|s| round1(d.delivered as f64 / s.cpu_s));
    let ok = complete
        && lost == 0
        && d.duplicated == 0
        && c.misrouted == 0
        && excess == 0
        && conns.failed == 0
        && conns.dropped == 0;
    Ok(Outcome {
        ok,
        json: json!({
            "scenario": "broadcast",
            "url": target.url,
            "threads": threads,
            "rooms": a.rooms,
            "room_size": a.room_size,
            "senders_per_room": a.senders,
            "clients": total,
            "rate_target": rate,
            "duration_s": wall,
            "grace_max_s": a.grace,
            "drain_s": drained,
            "complete": complete,
            "said": said,
            "said_per_s": if wall > 0.0 { round1(said as f64 / wall) } else { 0.0 },
            "expected": expected,
            "delivered": d.delivered,
            "deliveries_per_s": round1(per_s),
            "deliveries_per_server_cpu_s": per_server_cpu,
            "lost": lost,
            "duplicated": d.duplicated,
            "misrouted": c.misrouted,
            "excess": excess,
            "bad_content": c.bad_content,
            "backpressured": c.backpressured,
            "latency_us": LatencySummary::of(&d.hist),
            "chat": counters,
            "connections": conns,
            "generator_cpu": gen_cpu,
            "server": server,
            "ok": ok,
        }),
    })
}

#[derive(Default)]
struct Counts {
    misrouted: u64,
    bad_content: u64,
    backpressured: u64,
}

impl BroadcastArgs {
    /// The options every scenario takes.
    pub fn common(&self) -> &Common {
        &self.common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqset_detects_duplicates() {
        let mut s = SeqSet::default();
        assert!(s.insert(0));
        assert!(s.insert(200));
        assert!(!s.insert(200));
        assert!(s.insert(63));
        assert_eq!(s.count, 3);
    }
}
