//! What all scenarios share: run phases across threads, paced connection launching, setup
//! tallies, error types and the server/generator measurement window.

use crate::conn::{CloseReason, Net};
use crate::stats::{self, round1, round3, LatencySummary, OwnCpu, TreeSample};
use crate::target::TargetError;
use crate::throttle::Throttle;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Fatal errors that stop a run before it can report.
#[derive(Debug)]
pub enum LoadError {
    /// Bad or refused target URL.
    Target(TargetError),
    /// Invalid combination of options.
    Usage(String),
    /// OS-level failure (poll creation, limits).
    Io(io::Error),
    /// A worker thread panicked.
    Thread(String),
    /// Scenario exists only as a placeholder.
    NotImplemented,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Target(e) => e.fmt(f),
            LoadError::Usage(s) => f.write_str(s),
            LoadError::Io(e) => write!(f, "io: {e}"),
            LoadError::Thread(s) => write!(f, "worker thread failed: {s}"),
            LoadError::NotImplemented => f.write_str("not implemented yet"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<io::Error> for LoadError {
    fn from(e: io::Error) -> Self {
        LoadError::Io(e)
    }
}

impl From<TargetError> for LoadError {
    fn from(e: TargetError) -> Self {
        LoadError::Target(e)
    }
}

/// Run phase, advanced only by the main thread and polled by workers each loop turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Connecting / logging in.
    Setup = 0,
    /// Traffic flows but is not measured.
    Warmup = 1,
    /// Measured traffic.
    Run = 2,
    /// No new messages; in-flight ones may still arrive.
    Drain = 3,
    /// Workers exit.
    Stop = 4,
}

/// State shared by the main thread and the workers.
pub struct Shared {
    /// Common time origin, so timestamps written by one thread are comparable in another.
    pub epoch: Instant,
    phase: AtomicU8,
    /// Clients that finished setup (connected, or logged in for chat scenarios).
    pub ready: AtomicUsize,
    /// Clients that failed setup.
    pub failed: AtomicUsize,
    /// Messages received so far (progress display only).
    pub received: AtomicU64,
    /// Deliveries (or echoes) the workers expect so far, published once per loop turn.
    pub expected: AtomicU64,
    /// Unique deliveries (or echoes) received so far, published once per loop turn.
    pub delivered: AtomicU64,
    /// Set by a worker that hit a fatal error, so the main thread stops waiting.
    pub abort: AtomicBool,
    /// Chat client ids by global index, filled in as logins complete.
    pub ids: Mutex<Vec<Option<String>>>,
    /// Frozen copy of `ids` (JSON-quoted) published before the run phase starts.
    pub id_snapshot: OnceLock<Vec<Option<String>>>,
}

impl Shared {
    /// New shared state for `clients` clients.
    pub fn new(clients: usize) -> Shared {
        Shared {
            epoch: Instant::now(),
            phase: AtomicU8::new(Phase::Setup as u8),
            ready: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            abort: AtomicBool::new(false),
            ids: Mutex::new(vec![None; clients]),
            id_snapshot: OnceLock::new(),
        }
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Setup,
            1 => Phase::Warmup,
            2 => Phase::Run,
            3 => Phase::Drain,
            _ => Phase::Stop,
        }
    }

    /// Moves all workers to `p`.
    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Release);
    }

    /// Microseconds since `epoch`.
    pub fn now_us(&self) -> u64 {
        crate::conn::micros(self.epoch.elapsed())
    }

    /// Microseconds since `epoch` at `t`.
    pub fn us_at(&self, t: Instant) -> u64 {
        crate::conn::micros(t.saturating_duration_since(self.epoch))
    }
}

/// Main thread: freezes the chat id table (JSON-quoted) before the run phase, so workers
/// can pick targets and know which clients logged in.
pub fn publish_ids(shared: &Shared) -> bool {
    let Ok(ids) = shared.ids.lock() else {
        return false;
    };
    let snapshot = ids
        .iter()
        .map(|id| {
            id.as_ref()
                .map(|s| serde_json::Value::from(s.as_str()).to_string())
        })
        .collect();
    shared.id_snapshot.set(snapshot).is_ok()
}

/// Global client indices owned by `thread`: every `threads`-th one, so rooms span threads.
pub fn owned(thread: usize, threads: usize, total: usize) -> Vec<usize> {
    (thread..total).step_by(threads).collect()
}

/// Opens a thread's connections at a fixed rate.
pub struct Launcher {
    globals: Vec<usize>,
    next: usize,
    rate: f64,
    start: Option<Instant>,
    /// Connects beyond this many wait (see `limit_to`).
    limit: usize,
    /// Connects already made when pacing (re)started.
    base: usize,
    /// Global index of each local connection id.
    pub local_to_global: Vec<usize>,
}

/// Upper bound of connects per loop turn, so I/O of already-open connections is not starved.
const MAX_CONNECTS_PER_TURN: usize = 512;

impl Launcher {
    /// Launcher for `globals` at `rate` connections per second (this thread's share).
    pub fn new(globals: Vec<usize>, rate: f64) -> Launcher {
        Launcher {
            globals,
            next: 0,
            rate: rate.max(1.0),
            start: None,
            limit: usize::MAX,
            base: 0,
            local_to_global: Vec::new(),
        }
    }

    /// Holds back every connect after the first `n` until raised again (staged setups,
    /// e.g. agents before visitors). Pacing restarts when the limit is raised.
    pub fn limit_to(&mut self, n: usize) {
        if n > self.limit && self.next >= self.limit {
            self.start = None;
            self.base = self.next;
        }
        self.limit = n;
    }

    /// All connections have been attempted.
    pub fn done(&self) -> bool {
        self.next >= self.globals.len()
    }

    /// Starts the connects that are due; immediate failures go to `tally`.
    pub fn step(&mut self, net: &mut Net, tally: &mut SetupTally, shared: &Shared) {
        if self.done() || self.next >= self.limit {
            return;
        }
        let start = *self.start.get_or_insert_with(|| {
            tally.first_attempt.get_or_insert_with(Instant::now);
            Instant::now()
        });
        let due = (self.base + (start.elapsed().as_secs_f64() * self.rate) as usize + 1)
            .min(self.globals.len())
            .min(self.limit);
        let mut budget = MAX_CONNECTS_PER_TURN;
        while self.next < due && budget > 0 {
            let g = self.globals[self.next];
            self.next += 1;
            budget -= 1;
            tally.attempted += 1;
            match net.connect(g) {
                Ok(id) => {
                    debug_assert_eq!(id, self.local_to_global.len());
                    self.local_to_global.push(g);
                }
                Err(reason) => {
                    tally.fail(&reason);
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Poll timeout that keeps connect pacing smooth while connects remain.
    pub fn timeout(&self, idle: Duration) -> Duration {
        if self.done() {
            idle
        } else {
            idle.min(Duration::from_millis(1))
        }
    }
}

/// Per-thread connection setup results.
pub struct SetupTally {
    /// Connect attempts.
    pub attempted: usize,
    /// Completed setups.
    pub established: usize,
    /// Failed setups.
    pub failed: usize,
    /// Connections lost after setup.
    pub dropped: usize,
    /// Setup latency (connect start to ready), µs.
    pub hist: Histogram<u64>,
    /// Failure/drop counts by reason.
    pub errors: BTreeMap<String, u64>,
    /// When the first connect started.
    pub first_attempt: Option<Instant>,
    /// When the last setup completed.
    pub last_open: Option<Instant>,
}

impl Default for SetupTally {
    fn default() -> Self {
        SetupTally {
            attempted: 0,
            established: 0,
            failed: 0,
            dropped: 0,
            hist: stats::new_hist(),
            errors: BTreeMap::new(),
            first_attempt: None,
            last_open: None,
        }
    }
}

impl SetupTally {
    /// Records a completed setup.
    pub fn open(&mut self, setup_us: u64) {
        self.established += 1;
        stats::record(&mut self.hist, setup_us);
        self.last_open = Some(Instant::now());
    }

    /// Records a setup failure.
    pub fn fail(&mut self, reason: &CloseReason) {
        self.failed += 1;
        *self.errors.entry(reason.label()).or_default() += 1;
    }

    /// Records a close event; returns true if it was a setup failure (not a later drop).
    pub fn closed(&mut self, was_open: bool, reason: &CloseReason, shared: &Shared) -> bool {
        if was_open {
            self.dropped += 1;
            *self
                .errors
                .entry(format!("dropped: {}", reason.label()))
                .or_default() += 1;
            false
        } else {
            self.fail(reason);
            shared.failed.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    /// Folds another thread's tally into this one.
    pub fn merge(&mut self, o: SetupTally) {
        self.attempted += o.attempted;
        self.established += o.established;
        self.failed += o.failed;
        self.dropped += o.dropped;
        let _ = self.hist.add(&o.hist);
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.first_attempt = min_opt(self.first_attempt, o.first_attempt);
        self.last_open = self.last_open.max(o.last_open);
    }

    /// JSON-ready summary.
    pub fn report(&self) -> ConnReport {
        let span = match (self.first_attempt, self.last_open) {
            (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        ConnReport {
            attempted: self.attempted,
            established: self.established,
            failed: self.failed,
            dropped: self.dropped,
            setup_rate_per_s: if span > 0.0 {
                round1(self.established as f64 / span)
            } else {
                0.0
            },
            setup_latency_us: LatencySummary::of(&self.hist),
            errors: self.errors.clone(),
        }
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Connection setup summary.
#[derive(Debug, Serialize)]
pub struct ConnReport {
    /// Connect attempts.
    pub attempted: usize,
    /// Completed setups (TCP + WebSocket upgrade).
    pub established: usize,
    /// Failed setups.
    pub failed: usize,
    /// Connections lost after setup.
    pub dropped: usize,
    /// Achieved setup rate, first attempt to last completion.
    pub setup_rate_per_s: f64,
    /// Connect start to upgrade complete.
    pub setup_latency_us: LatencySummary,
    /// Failure/drop counts by reason.
    pub errors: BTreeMap<String, u64>,
}

/// Server-side resource use over a measured window.
#[derive(Debug, Serialize)]
pub struct ServerReport {
    /// Root pid of the server tree.
    pub pid: u32,
    /// Processes in the tree at the end.
    pub processes: usize,
    /// CPU seconds (utime + stime, whole tree) used during the window.
    pub cpu_s: f64,
    /// That CPU as percent of one core over the window.
    pub cpu_pct_of_one_core: f64,
    /// Of `cpu_s`, the seconds spent in user space (utime); the rest ran in the kernel.
    pub user_s: f64,
    /// Of `cpu_s`, the seconds spent in the kernel (stime).
    pub sys_s: f64,
    /// Tree RSS at window start, KiB.
    pub rss_kb_start: u64,
    /// Tree RSS at window end, KiB.
    pub rss_kb_end: u64,
    /// Tree PSS at window start, KiB.
    pub pss_kb_start: u64,
    /// Tree PSS at window end, KiB.
    pub pss_kb_end: u64,
}

static WINDOW_CMD: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Sets the `--window-cmd` for this process (once, from main).
pub fn set_window_cmd(cmd: Option<String>) {
    let _ = WINDOW_CMD.set(cmd);
}

/// Runs the `--window-cmd` with `arg` (`start` or `stop`) and waits for it; a failure is
/// reported on stderr and does not stop the run.
pub fn window_cmd(arg: &str) {
    let Some(Some(cmd)) = WINDOW_CMD.get() else {
        return;
    };
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} {arg}"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("[window-cmd] `{cmd} {arg}` exited with {s}"),
        Err(e) => eprintln!("[window-cmd] `{cmd} {arg}` failed: {e}"),
    }
}

/// A measured window: generator CPU plus (optionally) the server tree's CPU and memory.
pub struct Window {
    gen: OwnCpu,
    server: Option<(u32, TreeSample)>,
    started: Instant,
    _throttle: Option<Throttle>,
}

impl Window {
    /// Starts measuring now.
    pub fn start(server_pid: Option<u32>) -> Window {
        Window {
            gen: OwnCpu::now(),
            server: server_pid.and_then(|p| stats::sample_tree(p).map(|s| (p, s))),
            started: Instant::now(),
            _throttle: None,
        }
    }

    /// Starts measuring now, first moving the server into `cgroup` (if given) until the
    /// window is dropped.
    pub fn start_throttled(
        server_pid: Option<u32>,
        cgroup: Option<&Path>,
    ) -> Result<Window, LoadError> {
        let throttle = match (cgroup, server_pid) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(LoadError::Usage(
                    "--throttle-cgroup needs --server-pid or --server-pid-file".into(),
                ))
            }
            (Some(dir), Some(pid)) => {
                let pids = stats::tree_pids(pid).unwrap_or_default();
                Some(Throttle::apply(dir, pids).map_err(|e| {
                    LoadError::Usage(format!(
                        "cannot move the server into {}: {e}",
                        dir.display()
                    ))
                })?)
            }
        };
        window_cmd("start");
        let mut w = Window::start(server_pid);
        w._throttle = throttle;
        Ok(w)
    }

    /// Ends the window: returns wall seconds, generator CPU and the server report.
    pub fn finish(&self) -> (f64, stats::CpuReport, Option<ServerReport>) {
        let wall = self.started.elapsed().as_secs_f64();
        let gen = self.gen.since(&OwnCpu::now());
        let server = self.server.and_then(|(pid, a)| {
            let b = stats::sample_tree(pid)?;
            let cpu = (b.cpu_s - a.cpu_s).max(0.0);
            let user = (b.user_s - a.user_s).clamp(0.0, cpu);
            Some(ServerReport {
                pid,
                processes: b.processes,
                cpu_s: round3(cpu),
                user_s: round3(user),
                sys_s: round3(cpu - user),
                cpu_pct_of_one_core: round1(cpu / wall.max(1e-9) * 100.0),
                rss_kb_start: a.rss_kb,
                rss_kb_end: b.rss_kb,
                pss_kb_start: a.pss_kb,
                pss_kb_end: b.pss_kb,
            })
        });
        (round3(wall), gen, server)
    }
}

/// What [`measure_run`] saw.
pub struct RunMeasure {
    /// Run phase wall seconds, generator CPU over the run, server usage over run and drain
    /// (deliveries of the drain are counted, so is the CPU that made them).
    pub measured: (f64, stats::CpuReport, Option<ServerReport>),
    /// Generator clock (µs) when the run started.
    pub run_start_us: u64,
    /// Seconds the drain took.
    pub drained: f64,
}

/// The measured phase shared by the message scenarios: run for `duration`, then drain for up
/// to `grace`, the server throttled throughout if `cgroup` is given.
pub fn measure_run(
    shared: &Shared,
    server_pid: Option<u32>,
    cgroup: Option<&Path>,
    duration: Duration,
    grace: Duration,
) -> Result<RunMeasure, LoadError> {
    let window = Window::start_throttled(server_pid, cgroup)?;
    let run_start_us = shared.now_us();
    hold_phase(shared, Phase::Run, duration);
    let (wall, gen, _) = window.finish();
    let drained = drain(shared, grace);
    let (_, _, server) = window.finish();
    window_cmd("stop");
    let server = server.map(|mut s| {
        // Per cent of one core over run and drain, the span the CPU was counted over.
        s.cpu_pct_of_one_core = round1(s.cpu_s / (wall + drained).max(1e-9) * 100.0);
        s
    });
    Ok(RunMeasure {
        measured: (wall, gen, server),
        run_start_us,
        drained,
    })
}

/// Main thread: waits until `expect` clients are ready or failed, printing progress.
/// Returns false on timeout or worker abort.
pub fn wait_setup(shared: &Shared, expect: usize, timeout: Duration, what: &str) -> bool {
    let start = Instant::now();
    let mut last_print = Instant::now();
    loop {
        let ready = shared.ready.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        if ready + failed >= expect {
            eprintln!(
                "[setup] {ready}/{expect} {what}, {failed} failed, {:.1}s",
                start.elapsed().as_secs_f64()
            );
            return true;
        }
        if shared.abort.load(Ordering::Relaxed) || start.elapsed() > timeout {
            eprintln!("[setup] gave up: {ready}/{expect} {what}, {failed} failed");
            return false;
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            eprintln!("[setup] {ready}/{expect} {what}, {failed} failed");
            last_print = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Main thread: switches to `phase` and sleeps `dur`, printing received-message progress.
pub fn hold_phase(shared: &Shared, phase: Phase, dur: Duration) {
    shared.set_phase(phase);
    let start = Instant::now();
    let mut last = shared.received.load(Ordering::Relaxed);
    let mut next_print = Duration::from_secs(1);
    while start.elapsed() < dur {
        if shared.abort.load(Ordering::Relaxed) {
            return;
        }
        let left = dur.saturating_sub(start.elapsed());
        std::thread::sleep(left.min(Duration::from_millis(50)));
        if start.elapsed() >= next_print {
            let now = shared.received.load(Ordering::Relaxed);
            eprintln!(
                "[{phase:?} {:>4.1}s] received {} msg/s, open {}",
                start.elapsed().as_secs_f64(),
                now - last,
                shared.ready.load(Ordering::Relaxed)
            );
            last = now;
            next_print += Duration::from_secs(1);
        }
    }
}

/// Per-thread expected/delivered counts, published to `Shared` in batches.
#[derive(Default)]
pub struct Tracker {
    expected: u64,
    delivered: u64,
    published_expected: u64,
    published_delivered: u64,
}

impl Tracker {
    /// `n` more deliveries are now owed.
    pub fn expect(&mut self, n: u64) {
        self.expected += n;
    }

    /// One owed delivery arrived.
    pub fn deliver(&mut self) {
        self.delivered += 1;
    }

    /// Adds the counts since the last call to the shared totals (call once per loop turn).
    pub fn publish(&mut self, shared: &Shared) {
        if self.expected != self.published_expected {
            shared
                .expected
                .fetch_add(self.expected - self.published_expected, Ordering::Relaxed);
            self.published_expected = self.expected;
        }
        if self.delivered != self.published_delivered {
            shared
                .delivered
                .fetch_add(self.delivered - self.published_delivered, Ordering::Relaxed);
            self.published_delivered = self.delivered;
        }
    }
}

/// Main thread: stops new sends and waits until every expected delivery has arrived, at most
/// `max`. Returns the seconds waited. Ending early keeps fast servers' runs short; the long
/// maximum lets a slow server catch up, so whatever is still missing afterwards is lost.
pub fn drain(shared: &Shared, max: Duration) -> f64 {
    shared.set_phase(Phase::Drain);
    let start = Instant::now();
    // Workers publish once per loop turn (poll timeouts are at most ~20 ms): wait for that.
    let settle = Duration::from_millis(60);
    let mut next_print = Duration::from_secs(1);
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let waited = start.elapsed();
        let (e, d) = (
            shared.expected.load(Ordering::Relaxed),
            shared.delivered.load(Ordering::Relaxed),
        );
        if (waited >= settle && d >= e) || waited >= max || shared.abort.load(Ordering::Relaxed) {
            if d < e {
                eprintln!(
                    "[Drain] gave up after {:.1}s: {d}/{e} delivered",
                    waited.as_secs_f64()
                );
            }
            return round3(waited.as_secs_f64());
        }
        if waited >= next_print {
            eprintln!("[Drain {:>4.1}s] {d}/{e} delivered", waited.as_secs_f64());
            next_print += Duration::from_secs(1);
        }
    }
}

/// Runs `worker(thread_index)` on `threads` scoped threads while `main` orchestrates; returns
/// the workers' results in thread order and `main`'s value.
pub fn run_threads<T, M, W, F>(
    threads: usize,
    shared: &Shared,
    worker: W,
    main: F,
) -> Result<(Vec<T>, M), LoadError>
where
    T: Send,
    W: Fn(usize) -> Result<T, LoadError> + Sync,
    F: FnOnce() -> M,
{
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let worker = &worker;
                s.spawn(move || {
                    let r = worker(t);
                    if r.is_err() {
                        shared.abort.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        let m = main();
        shared.set_phase(Phase::Stop);
        let mut out = Vec::with_capacity(threads);
        for h in handles {
            match h.join() {
                Ok(r) => out.push(r?),
                Err(_) => return Err(LoadError::Thread("panic".into())),
            }
        }
        Ok((out, m))
    })
}
