//! `private`: every client says to a random other client's id; each message must reach
//! exactly its addressee once (the server's copy back to the sender is not a delivery).

use super::chat::{self, ChatMsg, ChatThread, Client, Deliveries, Pacer, SayHandler};
use crate::conn::{Kind, Net};
use crate::runner::{self, LoadError, Phase, Shared};
use crate::stats::{round1, LatencySummary};
use crate::{check_connections, check_rate, check_seconds, Common, Outcome};
use clap::Args;
use serde_json::json;
use std::collections::HashSet;
use std::fmt::Write;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

/// Most delivery ids a thread's set is sized for up front (16 bytes each at most: 64 MiB).
const MAX_PRESIZED: usize = 1 << 22;

/// Options of the `private` scenario.
#[derive(Args, Debug)]
pub struct PrivateArgs {
    #[command(flatten)]
    common: Common,
    /// Clients.
    #[arg(short = 'c', long, default_value_t = 100)]
    clients: usize,
    /// Rooms the clients are spread over (round robin; targets ignore rooms).
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Total private messages per second over all clients.
    #[arg(long, default_value_t = 1000.0)]
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

/// Hashes the generator's own delivery ids (sender << 32 | seq) with one multiply-xorshift
/// round: SipHash's flood resistance buys nothing for ids we made, and it was most of
/// `on_say`.
#[derive(Default)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let x = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 29);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

struct Handler {
    total: usize,
    pacer: Pacer,
    /// Logged-in clients of this thread: (local id, next seq).
    mine: Vec<(usize, u64)>,
    rr: usize,
    /// JSON-quoted ids of all clients, fetched when the run starts.
    ids: Option<Vec<Option<String>>>,
    seen: HashSet<u64, BuildHasherDefault<MixHasher>>,
    d: Deliveries,
    sent: u64,
    misrouted: u64,
    echoes: u64,
    bad_content: u64,
    backpressured: u64,
    msg: String,
}

impl SayHandler for Handler {
    fn on_login(&mut self, local: usize, _client: &Client) {
        self.mine.push((local, 0));
    }

    fn on_say(
        &mut self,
        _local: usize,
        me: &Client,
        msg: &ChatMsg<'_>,
        at: Instant,
        shared: &Shared,
    ) {
        let my_id = me.id.as_deref();
        if msg.from_client_id.as_ref().map(|i| i.0.as_str()) == my_id {
            self.echoes += 1;
            return;
        }
        let Some((sender, seq, ts)) = msg.content.as_deref().and_then(chat::parse_content) else {
            self.bad_content += 1;
            return;
        };
        if msg.to_client_id.as_ref().map(|i| i.0.as_str()) != my_id || sender >= self.total {
            self.misrouted += 1;
            return;
        }
        // Sequence numbers stay far below 2^32 within the bounded duration.
        let fresh = self.seen.insert(((sender as u64) << 32) | seq);
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
        if phase != Phase::Run || self.mine.is_empty() {
            return Duration::from_millis(10);
        }
        if self.ids.is_none() {
            self.ids = shared.id_snapshot.get().cloned();
        }
        let Some(ids) = &self.ids else {
            return Duration::from_millis(1);
        };
        let due = self.pacer.due();
        let mut misses = 0;
        for _ in 0..due {
            self.rr = (self.rr + 1) % self.mine.len();
            let (local, seq) = self.mine[self.rr];
            let me = &clients[local];
            // A random other logged-in client; give up on this slot after a few tries.
            let target = (0..8).find_map(|_| {
                let t = net.rng().below(self.total);
                (t != me.global).then(|| ids[t].as_deref()).flatten()
            });
            let Some(to) = target.filter(|_| me.alive) else {
                misses += 1;
                continue;
            };
            self.msg.clear();
            let ts = shared.now_us();
            let _ = write!(
                self.msg,
                r#"{{"type":"say","to_client_id":{to},"content":"{}:{seq}:{ts}"}}"#,
                me.global
            );
            if net.send(local, Kind::Text, self.msg.as_bytes()) {
                self.mine[self.rr].1 += 1;
                self.sent += 1;
                self.pacer.sent();
                self.d.tracker.expect(1);
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
pub fn run(a: &PrivateArgs) -> Result<Outcome, LoadError> {
    let target = a.common.target()?;
    if a.clients < 2 || a.rooms == 0 {
        return Err(LoadError::Usage(
            "need --clients >= 2 and --rooms >= 1".into(),
        ));
    }
    check_connections(a.clients)?;
    let rate = check_rate("rate", a.rate)?;
    let connect_rate = check_rate("connect-rate", a.connect_rate)?;
    let duration = check_seconds("duration", a.duration)?;
    let grace = check_seconds("grace", a.grace)?;
    let server_pid = a.common.server_pid()?;
    let throttle = a.common.throttle()?;
    let total = a.clients;
    let threads = a.common.threads.min(total);
    let shared = Shared::new(total);
    let rooms = a.rooms;
    let room_of = move |g: usize| (g % rooms + 1).to_string();
    let setup_budget = Duration::from_secs_f64(total as f64 / connect_rate)
        + a.common.setup_limit()
        + Duration::from_secs(10);

    let worker = |t: usize| {
        let mine = runner::owned(t, threads, total).len();
        let thread_rate = rate * mine as f64 / total as f64;
        // Sized for the whole run up front: growing a set of a few hundred thousand ids rehashes
        // it all at once, a millisecond-long stall that shows up as the generator's own p99.
        let expected = (thread_rate * duration.as_secs_f64() * 1.1) as usize + 1024;
        let mut h = Handler {
            total,
            pacer: Pacer::new(thread_rate),
            mine: Vec::new(),
            rr: 0,
            ids: None,
            seen: HashSet::with_capacity_and_hasher(expected.min(MAX_PRESIZED), Default::default()),
            d: Deliveries::default(),
            sent: 0,
            misrouted: 0,
            echoes: 0,
            bad_content: 0,
            backpressured: 0,
            msg: String::with_capacity(160),
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
        let setup = chat::run_thread(&p, &shared, &mut h)?;
        Ok((setup, h))
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
    let mut d = Deliveries::default();
    let mut setups = Vec::new();
    let (mut sent, mut misrouted, mut echoes, mut bad, mut bp) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for (setup, h) in outs {
        setups.push(setup);
        d.merge(&h.d);
        sent += h.sent;
        misrouted += h.misrouted;
        echoes += h.echoes;
        bad += h.bad_content;
        bp += h.backpressured;
    }
    let (delivered, dup) = (d.delivered, d.duplicated);
    let (tally, counters) = chat::merge_setup(setups);
    let conns = tally.report();
    let lost = sent.saturating_sub(delivered);
    let (wall, gen_cpu, server) = match measured {
        Some((w, g, s)) => (w, Some(g), s),
        None => (0.0, None, None),
    };
    let per_s = d.per_s(run_start_us, wall);
    let per_server_cpu = server
        .as_ref()
        .filter(|s| s.cpu_s > 0.0)
        .map(|s| round1(delivered as f64 / s.cpu_s));
    let ok = complete
        && lost == 0
        && dup == 0
        && misrouted == 0
        && delivered <= sent
        && conns.failed == 0
        && conns.dropped == 0;
    Ok(Outcome {
        ok,
        json: json!({
            "scenario": "private",
            "url": target.url,
            "threads": threads,
            "clients": total,
            "rooms": a.rooms,
            "rate_target": rate,
            "duration_s": wall,
            "grace_max_s": a.grace,
            "drain_s": drained,
            "complete": complete,
            "sent": sent,
            "delivered": delivered,
            "deliveries_per_s": round1(per_s),
            "deliveries_per_server_cpu_s": per_server_cpu,
            "lost": lost,
            "duplicated": dup,
            "misrouted": misrouted,
            "sender_echoes": echoes,
            "bad_content": bad,
            "backpressured": bp,
            "latency_us": LatencySummary::of(&d.hist),
            "chat": counters,
            "connections": conns,
            "generator_cpu": gen_cpu,
            "server": server,
            "ok": ok,
        }),
    })
}
impl PrivateArgs {
    /// The options every scenario takes.
    pub fn common(&self) -> &Common {
        &self.common
    }
}
