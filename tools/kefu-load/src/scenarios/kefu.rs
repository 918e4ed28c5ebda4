//! `kefu`: the customer-service protocol (`docs/kefu-protocol.md`). A agents log in over
//! HTTP then WebSocket; V anonymous visitors connect, open a conversation each and are routed
//! to agents; routed visitors then send text messages at a fixed total rate and each agent
//! answers every N-th visitor message it gets. Measured: stored-and-acked messages/s, send →
//! ack latency, send → delivery latency (visitor → agent and agent → visitor), lost,
//! duplicated, and per-connection seq order.

use super::kefu_client::{self, Plan, Tally};
use super::kefu_proto;
use crate::runner::{self, LoadError, Shared};
use crate::stats::{self, round1, round3, LatencySummary};
use crate::{check_connections, check_rate, check_seconds, Common, Outcome};
use clap::Args;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Options of the `kefu` scenario.
#[derive(Args, Debug)]
pub struct KefuArgs {
    #[command(flatten)]
    common: Common,
    /// HTTP base for `/api/*` (default: the WebSocket URL's address).
    #[arg(long)]
    http: Option<String>,
    /// Business id.
    #[arg(long, default_value = "shop1")]
    bid: String,
    /// Agents to log in (the first A of the credentials).
    #[arg(long, default_value_t = 4)]
    agents: usize,
    /// File of agent credentials, `id:password` per line (or comma separated).
    #[arg(long)]
    agent_password_file: Option<PathBuf>,
    /// Agent credentials inline: `id:password,id:password`.
    #[arg(long)]
    agent_credentials: Option<String>,
    /// Visitors (each opens one conversation).
    #[arg(long, default_value_t = 40)]
    visitors: usize,
    /// Total visitor messages per second, spread evenly over the routed visitors.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Each agent replies to every N-th visitor message it receives (0 = never).
    #[arg(long, default_value_t = 10)]
    reply_every: u64,
    /// Measured seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Most seconds to wait after sending stops for missing acks and deliveries.
    #[arg(long, default_value_t = 10.0)]
    grace: f64,
    /// Connection attempts per second during setup.
    #[arg(long, default_value_t = 1000.0)]
    connect_rate: f64,
    /// The server's per-connection message limit (`[kefu] rate_per_sec`), for a warning
    /// when the offered per-connection rate exceeds it.
    #[arg(long, default_value_t = 20.0)]
    server_rate_limit: f64,
}

fn credentials(a: &KefuArgs) -> Result<Vec<(String, String)>, LoadError> {
    let mut creds = Vec::new();
    if let Some(path) = &a.agent_password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LoadError::Usage(format!("cannot read {}: {e}", path.display())))?;
        creds.extend(kefu_proto::parse_credentials(&text)?);
    }
    if let Some(inline) = &a.agent_credentials {
        creds.extend(kefu_proto::parse_credentials(inline)?);
    }
    if creds.len() < a.agents {
        return Err(LoadError::Usage(format!(
            "--agents {} but only {} credentials given (--agent-password-file / --agent-credentials)",
            a.agents,
            creds.len()
        )));
    }
    creds.truncate(a.agents);
    Ok(creds)
}

fn hist_of(
    tallies: &[Tally],
    f: impl Fn(&Tally) -> Option<&hdrhistogram::Histogram<u64>>,
) -> LatencySummary {
    let mut h = stats::new_hist();
    for t in tallies {
        if let Some(x) = f(t) {
            let _ = h.add(x);
        }
    }
    LatencySummary::of(&h)
}

fn all_deliveries(tallies: &[Tally]) -> LatencySummary {
    let mut h = stats::new_hist();
    for t in tallies {
        for x in [&t.v2a_hist, &t.a2v_hist].into_iter().flatten() {
            let _ = h.add(x);
        }
    }
    LatencySummary::of(&h)
}

/// Runs the scenario.
pub fn run(a: &KefuArgs) -> Result<Outcome, LoadError> {
    let target = a.common.target()?;
    if a.agents == 0 || a.visitors == 0 {
        return Err(LoadError::Usage(
            "need --agents >= 1 and --visitors >= 1".into(),
        ));
    }
    let total = a.agents + a.visitors;
    check_connections(total)?;
    let rate = check_rate("rate", a.rate)?;
    let connect_rate = check_rate("connect-rate", a.connect_rate)?;
    let duration = check_seconds("duration", a.duration)?;
    let grace = check_seconds("grace", a.grace)?;
    let server_pid = a.common.server_pid()?;
    let throttle = a.common.throttle()?;
    let http = match &a.http {
        Some(u) => kefu_proto::http_addr(u)?,
        None => target.addr,
    };
    let creds = credentials(a)?;

    // Agents log in over HTTP first (serially; a handful of requests).
    let mut agents = Vec::with_capacity(creds.len());
    for (id, pw) in &creds {
        let token = kefu_proto::agent_login(http, &a.bid, id, pw)?;
        agents.push((id.clone(), token));
    }
    let agent_index: HashMap<String, usize> = agents
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.clone(), i))
        .collect();
    eprintln!("[setup] {} agents logged in over HTTP", agents.len());

    let threads = a.common.threads.min(total);
    let shared = Shared::new(total);
    let visitors_go = AtomicBool::new(false);
    let routed = AtomicUsize::new(0);
    let queued = AtomicUsize::new(0);
    let plan = Plan {
        target: target.clone(),
        bid: &a.bid,
        agents: &agents,
        agent_index: &agent_index,
        total,
        threads,
        connect_rate: connect_rate / threads as f64,
        setup_limit: a.common.setup_limit(),
        rate,
        reply_every: a.reply_every,
        visitors_go: &visitors_go,
        routed: &routed,
        queued: &queued,
    };
    let setup_budget = Duration::from_secs_f64(total as f64 / connect_rate)
        + a.common.setup_limit()
        + Duration::from_secs(10);

    let worker = |t: usize| kefu_client::run_thread(&plan, t, &shared);
    let main = || {
        let agents_in = runner::wait_setup(&shared, a.agents, setup_budget, "agents logged in");
        if !agents_in || shared.failed.load(Ordering::Relaxed) > 0 {
            return (false, None, 0, 0.0);
        }
        visitors_go.store(true, Ordering::Release);
        if !runner::wait_setup(&shared, total, setup_budget, "clients ready") {
            return (false, None, 0, 0.0);
        }
        let r = routed.load(Ordering::Relaxed);
        eprintln!(
            "[setup] visitors routed {r}, queued {}",
            queued.load(Ordering::Relaxed)
        );
        let per_conn = rate / r.max(1) as f64;
        if per_conn > a.server_rate_limit {
            eprintln!(
                "[setup] warning: {per_conn:.1} msgs/s per visitor exceeds the server's \
                 per-connection limit {} (raise [kefu] rate_per_sec)",
                a.server_rate_limit
            );
        }
        match runner::measure_run(&shared, server_pid, throttle, duration, grace) {
            Ok(m) => (true, Some(m.measured), m.run_start_us, m.drained),
            Err(e) => {
                eprintln!("[run] {e}");
                (false, None, 0, 0.0)
            }
        }
    };
    let (tallies, (complete, measured, run_start_us, drained)) =
        runner::run_threads(threads, &shared, worker, main)?;
    Ok(report(
        a,
        &target.url,
        threads,
        tallies,
        complete,
        measured,
        run_start_us,
        drained,
        &routed,
        &queued,
    ))
}

#[allow(clippy::too_many_arguments)]
fn report(
    a: &KefuArgs,
    url: &str,
    threads: usize,
    mut tallies: Vec<Tally>,
    complete: bool,
    measured: Option<(f64, stats::CpuReport, Option<runner::ServerReport>)>,
    run_start_us: u64,
    drained: f64,
    routed: &AtomicUsize,
    queued: &AtomicUsize,
) -> Outcome {
    let mut setup = runner::SetupTally::default();
    let mut got: HashSet<(usize, usize, u64)> = HashSet::new();
    let mut owed = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut pushes: BTreeMap<String, u64> = BTreeMap::new();
    let mut s = Tally::default();
    for t in &mut tallies {
        setup.merge(std::mem::take(&mut t.setup));
        got.extend(t.got.drain());
        owed.append(&mut t.owed);
        for (k, v) in std::mem::take(&mut t.errors) {
            *errors.entry(k).or_default() += v;
        }
        for (k, v) in std::mem::take(&mut t.pushes) {
            *pushes.entry(k).or_default() += v;
        }
        s.sent_visitor += t.sent_visitor;
        s.sent_agent += t.sent_agent;
        s.acked += t.acked;
        s.duplicated += t.duplicated;
        s.sender_echoes += t.sender_echoes;
        s.seq_out_of_order += t.seq_out_of_order;
        s.seq_duplicates += t.seq_duplicates;
        s.seq_gaps += t.seq_gaps;
        s.other_messages += t.other_messages;
        s.unexpected += t.unexpected;
        s.backpressured += t.backpressured;
        s.unacked += t.unacked;
        s.last_ack_us = s.last_ack_us.max(t.last_ack_us);
    }
    let lost = owed.iter().filter(|k| !got.contains(k)).count() as u64;
    let owed_set: HashSet<_> = owed.iter().copied().collect();
    // Delivered without an ack (or to someone else): the server sent what it never confirmed.
    let unowed = got.iter().filter(|k| !owed_set.contains(k)).count() as u64;
    let conns = setup.report();
    let (wall, gen_cpu, server) = match measured {
        Some((w, g, s)) => (w, Some(g), s),
        None => (0.0, None, None),
    };
    let span_s = (s.last_ack_us.saturating_sub(run_start_us) as f64 / 1e6).max(wall);
    let acked_per_s = if span_s > 0.0 {
        s.acked as f64 / span_s
    } else {
        0.0
    };
    let cpu_s = server.as_ref().map(|x| x.cpu_s).filter(|c| *c > 0.0);
    let error_count: u64 = errors.values().sum();
    let ok = complete
        && lost == 0
        && s.duplicated == 0
        && s.seq_duplicates == 0
        && s.seq_gaps == 0
        && s.unacked == 0
        && unowed == 0
        && error_count == 0
        && conns.failed == 0
        && conns.dropped == 0;
    Outcome {
        ok,
        json: json!({
            "scenario": "kefu",
            "url": url,
            "threads": threads,
            "bid": a.bid,
            "agents": a.agents,
            "visitors": a.visitors,
            "routed": routed.load(Ordering::Relaxed),
            "queued": queued.load(Ordering::Relaxed),
            "rate_target": a.rate,
            "reply_every": a.reply_every,
            "duration_s": wall,
            "grace_max_s": a.grace,
            "drain_s": drained,
            "complete": complete,
            "sent": { "visitor": s.sent_visitor, "agent": s.sent_agent },
            "acked": s.acked,
            "acked_per_s": round1(acked_per_s),
            "acked_per_server_cpu_s": cpu_s.map(|c| round1(s.acked as f64 / c)),
            "server_cpu_s_per_1000_msgs": cpu_s.filter(|_| s.acked > 0).map(|c| round3(c * 1000.0 / s.acked as f64)),
            "unacked": s.unacked,
            "ack_latency_us": hist_of(&tallies, |t| t.ack_hist.as_ref()),
            "delivery_latency_us": {
                "visitor_to_agent": hist_of(&tallies, |t| t.v2a_hist.as_ref()),
                "agent_to_visitor": hist_of(&tallies, |t| t.a2v_hist.as_ref()),
                "all": all_deliveries(&tallies),
            },
            "expected_deliveries": owed.len(),
            "delivered": got.len(),
            "lost": lost,
            "delivered_unacked": unowed,
            "duplicated": s.duplicated,
            "seq": {
                "out_of_order": s.seq_out_of_order,
                "duplicates": s.seq_duplicates,
                "gaps": s.seq_gaps,
            },
            "sender_echoes": s.sender_echoes,
            "other_messages": s.other_messages,
            "pushes": pushes,
            "errors": errors,
            "unexpected": s.unexpected,
            "backpressured": s.backpressured,
            "connections": conns,
            "generator_cpu": gen_cpu,
            "server": server,
            "ok": ok,
        }),
    }
}
impl KefuArgs {
    /// The options every scenario takes.
    pub fn common(&self) -> &Common {
        &self.common
    }
}
