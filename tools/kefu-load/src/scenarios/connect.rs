//! `connect`: open N connections at R/s, hold them, and measure setup and server memory.

use crate::conn::{Batch, Event, Net};
use crate::runner::{self, LoadError, Phase, SetupTally, Shared, Window};
use crate::stats::{self, round1, TreeSample};
use crate::{check_connections, check_rate, check_seconds, Common, Outcome};
use clap::Args;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Options of the `connect` scenario.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open.
    #[arg(short = 'n', long, default_value_t = 1000)]
    n: usize,
    /// Connection attempts per second (total over all threads).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds to hold the connections once all are set up.
    #[arg(long, default_value_t = 5.0)]
    hold: f64,
}

/// Runs the scenario.
pub fn run(a: &ConnectArgs) -> Result<Outcome, LoadError> {
    let target = a.common.target()?;
    check_connections(a.n)?;
    let rate = check_rate("rate", a.rate)?;
    let hold = check_seconds("hold", a.hold)?;
    let server_pid = a.common.server_pid()?;
    let threads = a.common.threads.min(a.n);
    let shared = Shared::new(a.n);
    let limit = a.common.setup_limit();

    let mem_before = server_pid.and_then(stats::sample_tree);
    let window = Window::start(server_pid);
    let setup_budget = Duration::from_secs_f64(a.n as f64 / rate) + limit + Duration::from_secs(5);

    let worker = |t: usize| -> Result<SetupTally, LoadError> {
        let mut net = Net::new(target.clone(), t as u64)?;
        let mut launcher =
            runner::Launcher::new(runner::owned(t, threads, a.n), rate / threads as f64);
        let mut tally = SetupTally::default();
        let mut batch = Batch::default();
        let mut last_expire = Instant::now();
        while shared.phase() != Phase::Stop {
            launcher.step(&mut net, &mut tally, &shared);
            batch.clear();
            if last_expire.elapsed() >= Duration::from_millis(100) {
                net.expire_setup(limit, &mut batch);
                last_expire = Instant::now();
            }
            net.poll(
                Some(launcher.timeout(Duration::from_millis(20))),
                &mut batch,
            )?;
            net.collect_closed(&mut batch);
            for ev in &batch.events {
                match ev {
                    Event::Open { setup_us, .. } => {
                        tally.open(*setup_us);
                        shared.ready.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::Closed {
                        was_open, reason, ..
                    } => {
                        tally.closed(*was_open, reason, &shared);
                    }
                    Event::Message { .. } => {
                        shared.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        Ok(tally)
    };

    let main = || {
        let complete = runner::wait_setup(&shared, a.n, setup_budget, "connections");
        let setup = window.finish();
        // Let the server settle (lazy allocations, deferred frees) before reading memory.
        std::thread::sleep(Duration::from_millis(500));
        let mem_connected = server_pid.and_then(stats::sample_tree);
        runner::hold_phase(&shared, Phase::Run, hold);
        let mem_held = server_pid.and_then(stats::sample_tree);
        (complete, setup, mem_connected, mem_held)
    };

    let (tallies, (complete, (setup_wall, gen_cpu, server_cpu), mem_connected, mem_held)) =
        runner::run_threads(threads, &shared, worker, main)?;
    let mut tally = SetupTally::default();
    for t in tallies {
        tally.merge(t);
    }
    let conns = tally.report();
    let established = conns.established;
    let memory = mem_before.map(|before| {
        let per = |after: Option<TreeSample>| {
            after.map(|s| {
                let n = established.max(1) as f64;
                json!({
                    "rss_kb": s.rss_kb,
                    "pss_kb": s.pss_kb,
                    "processes": s.processes,
                    "rss_bytes_per_conn": round1((s.rss_kb as f64 - before.rss_kb as f64) * 1024.0 / n),
                    "pss_bytes_per_conn": round1((s.pss_kb as f64 - before.pss_kb as f64) * 1024.0 / n),
                })
            })
        };
        json!({
            "before": { "rss_kb": before.rss_kb, "pss_kb": before.pss_kb, "processes": before.processes },
            "connected": per(mem_connected),
            "end_of_hold": per(mem_held),
        })
    });
    let ok = complete && conns.failed == 0 && conns.dropped == 0;
    Ok(Outcome {
        ok,
        json: json!({
            "scenario": "connect",
            "url": target.url,
            "threads": threads,
            "n": a.n,
            "rate_target": rate,
            "hold_s": a.hold,
            "complete": complete,
            "connections": conns,
            "setup_wall_s": setup_wall,
            "generator_cpu_setup": gen_cpu,
            "server_cpu_setup": server_cpu,
            "server_memory": memory,
            "ok": ok,
        }),
    })
}
impl ConnectArgs {
    /// The options every scenario takes.
    pub fn common(&self) -> &Common {
        &self.common
    }
}
