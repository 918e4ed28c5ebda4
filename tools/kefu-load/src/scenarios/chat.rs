//! workerman-chat client logic shared by `broadcast` and `private`: connect, log in, learn
//! the own client_id, answer heartbeats, and hand `say` messages to a scenario handler.

use crate::conn::{Batch, Event, Kind, Net};
use crate::runner::{self, LoadError, Phase, ServerReport, SetupTally, Shared, Tracker};
use crate::stats::{self, CpuReport};
use crate::target::Target;
use hdrhistogram::Histogram;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A client id as the server sends it: workerman uses strings, but accept numbers too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a client id string or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of a server message that the scenarios look at; others are skipped.
#[derive(Debug, Deserialize)]
pub struct ChatMsg<'a> {
    /// Message type: login, logout, say, ping, ...
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    /// Newcomer's id (login).
    #[serde(default)]
    pub client_id: Option<Id>,
    /// Newcomer's name (login).
    #[serde(default, borrow)]
    pub client_name: Option<Cow<'a, str>>,
    /// Sender id (say, logout).
    #[serde(default)]
    pub from_client_id: Option<Id>,
    /// Addressee id or "all" (say).
    #[serde(default)]
    pub to_client_id: Option<Id>,
    /// Message body (say).
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
}

/// Extracts `(sender, seq, send_us)` from content ending in `<sender>:<seq>:<send_us>`;
/// anything before the sender's digits (e.g. a server-added prefix) is ignored.
pub fn parse_content(content: &str) -> Option<(usize, u64, u64)> {
    let mut it = content.rsplitn(3, ':');
    let ts = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let head = it.next()?;
    let digits = head.len() - head.bytes().rev().take_while(u8::is_ascii_digit).count();
    let sender = head[digits..].parse().ok()?;
    Some((sender, seq, ts))
}

/// Login request for client `global` in `room`.
pub fn login_message(global: usize, room: &str) -> String {
    format!(r#"{{"type":"login","client_name":"u{global}","room_id":"{room}"}}"#)
}

/// One chat client owned by a thread.
#[derive(Debug, Clone)]
pub struct Client {
    /// Global client index (name is `u<global>`).
    pub global: usize,
    /// Expected `client_name` in the own login echo.
    pub name: String,
    /// Server-assigned id once logged in.
    pub id: Option<String>,
    /// Connection is still up.
    pub alive: bool,
}

/// Counters of protocol traffic that is not a measured delivery.
#[derive(Debug, Default, Serialize)]
pub struct ChatCounters {
    /// Heartbeat pings answered with pong.
    pub pings: u64,
    /// Login announcements of other clients.
    pub other_logins: u64,
    /// Logout announcements.
    pub logouts: u64,
    /// Messages that were not JSON or had an unknown type.
    pub unexpected: u64,
}

impl ChatCounters {
    fn merge(&mut self, o: &ChatCounters) {
        self.pings += o.pings;
        self.other_logins += o.other_logins;
        self.logouts += o.logouts;
        self.unexpected += o.unexpected;
    }
}

/// Scenario-specific part of the chat loop.
pub trait SayHandler {
    /// A client of this thread finished login.
    fn on_login(&mut self, local: usize, client: &Client);
    /// A `say` arrived for local client `local`.
    fn on_say(
        &mut self,
        local: usize,
        me: &Client,
        msg: &ChatMsg<'_>,
        at: Instant,
        shared: &Shared,
    );
    /// Called every loop turn: send what is due. Returns the poll timeout wanted.
    fn tick(
        &mut self,
        net: &mut Net,
        clients: &[Client],
        phase: Phase,
        shared: &Shared,
    ) -> Duration;
}

/// Parameters of one chat worker thread.
pub struct ChatThread<'a> {
    /// Thread index.
    pub thread: usize,
    /// Thread count.
    pub threads: usize,
    /// Total clients across threads.
    pub total: usize,
    /// Connect rate of this thread.
    pub connect_rate: f64,
    /// Per-connection setup timeout.
    pub setup_limit: Duration,
    /// Server.
    pub target: Arc<Target>,
    /// Room id of a global client index.
    pub room_of: &'a (dyn Fn(usize) -> String + Sync),
}

/// Runs one thread's clients until `Phase::Stop`.
pub fn run_thread<H: SayHandler>(
    p: &ChatThread<'_>,
    shared: &Shared,
    handler: &mut H,
) -> Result<(SetupTally, ChatCounters), LoadError> {
    let mut net = Net::new(p.target.clone(), p.thread as u64)?;
    let mut launcher =
        runner::Launcher::new(runner::owned(p.thread, p.threads, p.total), p.connect_rate);
    let mut tally = SetupTally::default();
    let mut counters = ChatCounters::default();
    let mut clients: Vec<Client> = Vec::new();
    let mut batch = Batch::default();
    let mut last_expire = Instant::now();
    loop {
        let phase = shared.phase();
        if phase == Phase::Stop {
            break;
        }
        launcher.step(&mut net, &mut tally, shared);
        while clients.len() < launcher.local_to_global.len() {
            let g = launcher.local_to_global[clients.len()];
            clients.push(Client {
                global: g,
                name: format!("u{g}"),
                id: None,
                alive: true,
            });
        }
        let idle = handler.tick(&mut net, &clients, phase, shared);
        batch.clear();
        if last_expire.elapsed() >= Duration::from_millis(100) {
            net.expire_setup(p.setup_limit, &mut batch);
            last_expire = Instant::now();
        }
        net.poll(Some(launcher.timeout(idle)), &mut batch)?;
        let mut got = 0u64;
        for ev in &batch.events {
            match *ev {
                Event::Open { id, setup_us } => {
                    tally.open(setup_us);
                    let login = login_message(clients[id].global, &(p.room_of)(clients[id].global));
                    net.send(id, Kind::Text, login.as_bytes());
                }
                Event::Message {
                    id, start, end, at, ..
                } => {
                    got += 1;
                    let Ok(msg) = serde_json::from_slice::<ChatMsg<'_>>(batch.payload(start, end))
                    else {
                        counters.unexpected += 1;
                        continue;
                    };
                    match &*msg.ty {
                        "say" => handler.on_say(id, &clients[id], &msg, at, shared),
                        "ping" => {
                            counters.pings += 1;
                            net.send(id, Kind::Text, br#"{"type":"pong"}"#);
                        }
                        "login" => {
                            let c = &mut clients[id];
                            let own = c.id.is_none()
                                && msg.client_name.as_deref() == Some(c.name.as_str());
                            match (&msg.client_id, own) {
                                (Some(cid), true) => {
                                    c.id = Some(cid.0.clone());
                                    if let Ok(mut ids) = shared.ids.lock() {
                                        ids[c.global] = Some(cid.0.clone());
                                    }
                                    handler.on_login(id, c);
                                    shared.ready.fetch_add(1, Ordering::Relaxed);
                                }
                                _ => counters.other_logins += 1,
                            }
                        }
                        "logout" => counters.logouts += 1,
                        _ => counters.unexpected += 1,
                    }
                }
                Event::Closed {
                    id,
                    was_open,
                    ref reason,
                } => {
                    let failed_setup = tally.closed(was_open, reason, shared);
                    if let Some(c) = clients.get_mut(id) {
                        c.alive = false;
                        // Connected but never logged in: setup failed as far as the run is concerned.
                        if !failed_setup && c.id.is_none() {
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
    Ok((tally, counters))
}

/// Merges per-thread setup tallies and counters.
pub fn merge_setup(parts: Vec<(SetupTally, ChatCounters)>) -> (SetupTally, ChatCounters) {
    let mut tally = SetupTally::default();
    let mut counters = ChatCounters::default();
    for (t, c) in parts {
        tally.merge(t);
        counters.merge(&c);
    }
    (tally, counters)
}

/// Paces sends: how many are due now at `rate`/s since the first call.
pub struct Pacer {
    rate: f64,
    start: Option<Instant>,
    done: u64,
}

/// Most sends one loop turn may issue, so a stalled loop does not turn into a huge burst.
const MAX_SENDS_PER_TURN: u64 = 4096;

impl Pacer {
    /// Pacer for `rate` messages per second.
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            rate,
            start: None,
            done: 0,
        }
    }

    /// Number of sends due now (caller reports each completed send with `sent`).
    pub fn due(&mut self) -> u64 {
        let start = *self.start.get_or_insert_with(Instant::now);
        let want = (start.elapsed().as_secs_f64() * self.rate) as u64;
        want.saturating_sub(self.done).min(MAX_SENDS_PER_TURN)
    }

    /// Records one send.
    pub fn sent(&mut self) {
        self.done += 1;
    }

    /// Forgets sends that could not be made, instead of bursting them later.
    pub fn skip(&mut self, n: u64) {
        self.done += n;
    }

    /// Poll timeout to keep pacing smooth.
    pub fn timeout(&self) -> Duration {
        if self.rate > 0.0 {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        }
    }
}

/// Deliveries one generator thread saw: counts, latency, the last arrival.
pub struct Deliveries {
    pub hist: Histogram<u64>,
    pub delivered: u64,
    pub duplicated: u64,
    /// Generator clock (µs) of the latest delivery.
    pub last_us: u64,
    pub tracker: Tracker,
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries {
            hist: stats::new_hist(),
            delivered: 0,
            duplicated: 0,
            last_us: 0,
            tracker: Tracker::default(),
        }
    }
}

impl Deliveries {
    /// Count a message stamped `ts` (generator µs) that arrived at `at`; `fresh` is false for
    /// one already seen.
    pub fn record(&mut self, fresh: bool, ts: u64, at: Instant, shared: &Shared) {
        if !fresh {
            self.duplicated += 1;
            return;
        }
        self.delivered += 1;
        self.tracker.deliver();
        let now = shared.us_at(at);
        stats::record(&mut self.hist, now.saturating_sub(ts));
        self.last_us = self.last_us.max(now);
    }

    /// Add another thread's counts and latencies.
    pub fn merge(&mut self, o: &Deliveries) {
        let _ = self.hist.add(&o.hist);
        self.delivered += o.delivered;
        self.duplicated += o.duplicated;
        self.last_us = self.last_us.max(o.last_us);
    }

    /// Deliveries per second over the span from the run's start to the last delivery (at
    /// least the run's `wall` seconds), so a server that falls behind and catches up during
    /// the grace period is not credited with the grace time.
    pub fn per_s(&self, run_start_us: u64, wall: f64) -> f64 {
        let span_s = (self.last_us.saturating_sub(run_start_us) as f64 / 1e6).max(wall);
        if span_s > 0.0 {
            self.delivered as f64 / span_s
        } else {
            0.0
        }
    }
}

/// What the main thread of a chat scenario returns: complete, (wall, generator CPU, server),
/// run start (generator µs), drain seconds.
pub type MainOutcome = (
    bool,
    Option<(f64, CpuReport, Option<ServerReport>)>,
    u64,
    f64,
);

/// Main thread of a chat scenario: wait for every client to log in, publish the ids, then
/// the measured run and drain.
pub fn run_main(
    shared: &Shared,
    total: usize,
    setup_budget: Duration,
    server_pid: Option<u32>,
    throttle: Option<&Path>,
    duration: Duration,
    grace: Duration,
) -> MainOutcome {
    if !runner::wait_setup(shared, total, setup_budget, "logged in") || !runner::publish_ids(shared)
    {
        return (false, None, 0, 0.0);
    }
    match runner::measure_run(shared, server_pid, throttle, duration, grace) {
        Ok(m) => (true, Some(m.measured), m.run_start_us, m.drained),
        Err(e) => {
            eprintln!("[run] {e}");
            (false, None, 0, 0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_parsing() {
        assert_eq!(parse_content("12:34:5678"), Some((12, 34, 5678)));
        assert_eq!(parse_content("<b>对你说: </b>7:0:99"), Some((7, 0, 99)));
        assert_eq!(parse_content("hello"), None);
        assert_eq!(parse_content("x:1:2"), None);
    }

    #[test]
    fn message_parsing() {
        let m: ChatMsg = serde_json::from_str(
            r#"{"type":"login","client_id":"7f00000108fc00000001","client_name":"u3","time":"t","client_list":{"a":"b"}}"#,
        )
        .unwrap();
        assert_eq!(m.ty, "login");
        assert_eq!(m.client_id, Some(Id("7f00000108fc00000001".into())));
        let m: ChatMsg = serde_json::from_str(
            r#"{"type":"say","from_client_id":5,"to_client_id":"all","content":"1:2:3"}"#,
        )
        .unwrap();
        assert_eq!(m.from_client_id, Some(Id("5".into())));
        assert_eq!(m.content.as_deref(), Some("1:2:3"));
    }
}
