//! The master process: a small mio loop that supervises the workers.
//!
//! It owns no client connections and runs no app code. Inputs are the signal pipe, the control
//! socket (CLI requests), one control link per worker, and timers (the poll timeout). It spawns
//! workers, respawns the ones that die (with back-off), replaces them on reload, gathers
//! status, and stops them in order. It never sleeps.
//!
//! The master is split like the worker: a [`Base`] every part works on (the poll, the config,
//! the worker processes and slots, the node's cluster threads), whose methods are in
//! `procs.rs`, and parts that own their state, each a type with its methods in one file:
//! [`clients::Clients`] (the CLI's control socket), [`query::Queries`] (status and
//! connections requests fanned out to the workers), [`reload::Reloads`] (a reload in
//! progress). Stopping is a set of functions over the base (`stop.rs`). The loop in this file
//! dispatches events to them and carries the outcome of one to the others (a worker's Ready
//! to the reload, its exit to the queries and the reload, a reload's end to the CLI client).

pub(crate) mod channel;
pub(crate) mod control;
pub(crate) mod daemon;
pub(crate) mod signals;
pub(crate) mod spawn;

mod clients;
mod cluster;
mod listen;
mod procs;
mod query;
mod reload;
mod stop;

use crate::config::Config;
use crate::ipc::{CliReply, CliRequest, MasterMsg, WorkerMsg};
use crate::sys::process;
use crate::{error, info, warn};
use channel::Channel;
use clients::Clients;
use daemon::{InstanceLock, ReadyNotify, StartReport};
use listen::{MasterError, SlotSockets};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use query::{Queries, QueryKind};
use reload::Reloads;
use signals::{SignalEvent, Signals};
use slab::Slab;
use spawn::{Backoff, SpawnSpec};
use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

const SIGNAL: Token = Token(0);
const CONTROL: Token = Token(1);
/// The cluster relay has links to hand over.
const CLUSTER: Token = Token(2);
/// Tokens `CLIENT_BASE..PROC_BASE` are CLI clients, `PROC_BASE..` worker links (slab keys).
const CLIENT_BASE: usize = 16;
const PROC_BASE: usize = 1 << 20;

/// Time every worker gets to report Ready at startup before the start is declared failed.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Everything the master needs, prepared by `kefu start`.
#[derive(Debug)]
pub(crate) struct MasterOptions {
    /// The loaded configuration.
    pub cfg: Config,
    /// How to exec workers.
    pub spawn: SpawnSpec,
    /// The instance lock (already taken).
    pub lock: InstanceLock,
    /// Where to report startup success or failure.
    pub notify: ReadyNotify,
}

/// Run the master until it stops; returns the process exit code.
pub(crate) fn run(opts: MasterOptions) -> i32 {
    let MasterOptions {
        cfg,
        spawn,
        lock,
        mut notify,
    } = opts;
    if let Err(e) = lock.write_pid(std::process::id()) {
        notify.report(&StartReport::Failed {
            reason: format!("cannot write pid file {}: {e}", cfg.pid_file.display()),
        });
        return 1;
    }
    match Master::new(cfg, spawn, notify) {
        Ok(m) => {
            let code = m.run();
            lock.remove_pid();
            code
        }
        Err((e, cfg, mut notify)) => {
            error!("start failed: {e}");
            notify.report(&StartReport::Failed {
                reason: e.to_string(),
            });
            let _ = std::fs::remove_file(cfg.control_socket());
            lock.remove_pid();
            1
        }
    }
}

/// Where a worker process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcState {
    /// Spawned, Ready not yet received.
    Starting,
    /// Serving.
    Running,
    /// Told to stop; SIGKILL at `kill_at` if still alive (None: wait as long as it takes).
    Stopping { kill_at: Option<Instant> },
    /// SIGKILL sent; waiting for the reap.
    Killed,
}

/// One live worker process.
#[derive(Debug)]
struct Proc {
    worker_id: usize,
    /// Incarnation: unique across workers and master restarts (the first part of client ids).
    inc: u64,
    pid: i32,
    started: Instant,
    state: ProcState,
    chan: Channel,
    listeners: Vec<String>,
    /// Reason sent with `WorkerMsg::Failed`, shown if it then exits.
    failed: Option<String>,
}

/// One worker slot (0..workers): the process currently serving it and its respawn state.
#[derive(Debug, Default)]
struct Slot {
    current: Option<usize>,
    backoff: Backoff,
    respawn_at: Option<Instant>,
}

/// The master's lifecycle phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for every first worker to be Ready.
    Starting { deadline: Instant },
    /// Serving (a reload may be in progress, see [`Reloads`]).
    Running,
    /// Stopping: no respawns; exit once every worker is reaped.
    Stopping { graceful: bool, exit_code: i32 },
}

/// What every part of the master works on. Kept apart from the parts' own state so a part can
/// take `&mut Base` beside `&mut self`. Its methods are in `procs.rs`.
#[derive(Debug)]
struct Base {
    cfg: Config,
    poll: Poll,
    /// Where `kefu start` waits for the outcome of the start.
    notify: ReadyNotify,
    phase: Phase,
    /// The worker processes, by key (the token of their control link is `PROC_BASE + key`).
    procs: Slab<Proc>,
    slots: Vec<Slot>,
    /// Listening sockets per worker slot, owned here for the master's whole life: the worker
    /// of a slot and its successor at a reload serve the same sockets, so a worker that goes
    /// away never takes its accept queue with it (a closed SO_REUSEPORT socket resets the
    /// connections queued on it).
    slot_listeners: Vec<SlotSockets>,
    spawn: SpawnSpec,
    /// Workers spawned so far (the low part of incarnations).
    generation: u64,
    /// Master start in microseconds since the epoch: the base of worker incarnations.
    start_micros: u64,
    /// Exit counts per raw wait status (Workerman's exit_status table).
    exits: BTreeMap<i32, u64>,
    /// The cluster threads, when `[cluster]` is configured.
    node: cluster::Node,
}

/// The master: the shared base and its parts.
struct Master {
    base: Base,
    signals: Signals,
    clients: Clients,
    queries: Queries,
    reload: Reloads,
    exit_code: Option<i32>,
    /// A SIGCHLD came: children may wait to be reaped, one per loop turn.
    reaping: bool,
}

impl Master {
    #[allow(clippy::result_large_err)]
    fn new(
        cfg: Config,
        spawn: SpawnSpec,
        notify: ReadyNotify,
    ) -> Result<Master, (MasterError, Config, ReadyNotify)> {
        let setup = || -> Result<_, MasterError> {
            let sock = cfg.control_socket();
            let control = control::bind(&sock).map_err(|e| MasterError::Io("control socket", e))?;
            listen::check_ports(&cfg)?;
            listen::check_tls(&cfg.listen)?;
            let listeners = (0..cfg.workers)
                .map(|_| listen::bind_slot(&cfg))
                .collect::<Result<Vec<_>, _>>()?;
            let signals = Signals::install().map_err(|e| MasterError::Io("signals", e))?;
            let poll = Poll::new().map_err(|e| MasterError::Io("poll", e))?;
            Ok((control, listeners, signals, poll))
        };
        let (mut control, slot_listeners, signals, poll) = match setup() {
            Ok(v) => v,
            Err(e) => return Err((e, cfg, notify)),
        };
        let reg = poll
            .registry()
            .register(&mut SourceFd(&signals.fd()), SIGNAL, Interest::READABLE)
            .and_then(|_| {
                poll.registry()
                    .register(&mut control, CONTROL, Interest::READABLE)
            });
        if let Err(e) = reg {
            return Err((MasterError::Io("poll register", e), cfg, notify));
        }
        let slots = (0..cfg.workers).map(|_| Slot::default()).collect();
        Ok(Master {
            base: Base {
                slot_listeners,
                notify,
                poll,
                procs: Slab::new(),
                slots,
                phase: Phase::Starting {
                    deadline: Instant::now() + START_TIMEOUT,
                },
                generation: 0,
                start_micros: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as u64)
                    .unwrap_or(0),
                exits: BTreeMap::new(),
                node: cluster::Node::default(),
                spawn,
                cfg,
            },
            signals,
            clients: Clients::new(control),
            queries: Queries::new(crate::log::now_secs()),
            reload: Reloads::default(),
            exit_code: None,
            reaping: false,
        })
    }

    fn run(mut self) -> i32 {
        let b = &mut self.base;
        info!(
            "kefu/{} master started: app {}, {} workers, listen {}",
            env!("CARGO_PKG_VERSION"),
            b.cfg.app,
            b.cfg.workers,
            b.listen_list().join(" ")
        );
        if let Err(e) = b.node.start(&b.cfg, b.poll.registry(), CLUSTER) {
            self.fail_startup(format!("cannot start the cluster threads: {e}"));
        }
        for slot in 0..self.base.slots.len() {
            if let Err(e) = self.base.spawn_into_slot(slot) {
                self.fail_startup(format!("cannot spawn worker {slot}: {e}"));
                break;
            }
        }
        let mut events = Events::with_capacity(128);
        loop {
            if self.phase_done() {
                break;
            }
            let timeout = if self.reaping {
                Some(Duration::ZERO)
            } else {
                self.next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.base.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                error!("poll failed: {e}; killing workers");
                stop::kill_all(&mut self.base);
                self.exit_code = Some(1);
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    SIGNAL => self.on_signals(),
                    CONTROL => self.clients.accept(&self.base.poll),
                    CLUSTER => self.base.node.on_wake(&mut self.base.procs),
                    Token(t) if t >= PROC_BASE => self.on_proc_event(t - PROC_BASE),
                    Token(t) => self.on_client_event(t - CLIENT_BASE),
                }
            }
            if self.reaping {
                self.reap_one();
            }
            self.on_timers(Instant::now());
        }
        self.base.node.leave();
        let _ = std::fs::remove_file(self.base.cfg.control_socket());
        let code = self.exit_code.unwrap_or(0);
        info!("kefu master exits ({code})");
        code
    }

    /// In Stopping, true once every worker is reaped (and sets the exit code).
    fn phase_done(&mut self) -> bool {
        if self.exit_code.is_some() {
            return true;
        }
        if let Phase::Stopping { exit_code, .. } = self.base.phase {
            if self.base.procs.is_empty() {
                self.exit_code = Some(exit_code);
                return true;
            }
        }
        false
    }

    fn on_signals(&mut self) {
        for (sig, ev) in self.signals.drain() {
            match ev {
                SignalEvent::Child => self.reaping = true,
                SignalEvent::Stop { graceful } => {
                    info!("received {}", process::signal_name(sig));
                    self.begin_stop(graceful);
                }
                SignalEvent::Reload { graceful } => {
                    info!("received {}", process::signal_name(sig));
                    let r = self
                        .reload
                        .begin(&mut self.base, &mut self.clients, graceful, None);
                    if let Err(e) = r {
                        warn!("reload refused: {e}");
                    }
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let b = &self.base;
        let mut d: Vec<Instant> = Vec::new();
        if let Phase::Starting { deadline } = b.phase {
            d.push(deadline);
        }
        d.extend(b.procs.iter().filter_map(|(_, p)| match p.state {
            ProcState::Stopping { kill_at } => kill_at,
            _ => None,
        }));
        d.extend(b.slots.iter().filter_map(|s| s.respawn_at));
        d.extend(self.queries.next_deadline());
        d.extend(self.reload.next_deadline());
        d.into_iter().min()
    }

    fn on_timers(&mut self, now: Instant) {
        if let Phase::Starting { deadline } = self.base.phase {
            if now >= deadline {
                self.fail_startup(format!(
                    "workers not ready within {}s",
                    START_TIMEOUT.as_secs()
                ));
            }
        }
        stop::kill_late(&mut self.base, now);
        if self.base.phase == Phase::Running {
            self.base.respawn_due(now);
        }
        self.reload
            .on_timers(&mut self.base, &mut self.clients, now);
        self.queries
            .finish(&self.base, &mut self.clients, self.reload.active(), now);
    }

    fn on_client_event(&mut self, key: usize) {
        if let Some(req) = self.clients.on_event(&self.base.poll, key) {
            self.on_request(key, req);
        }
        self.clients.maybe_close(&self.base.poll, key);
    }

    /// A CLI request: each goes to the part that answers it.
    fn on_request(&mut self, key: usize, req: CliRequest) {
        match req {
            CliRequest::Status => self.begin_query(key, QueryKind::Status),
            CliRequest::Connections => self.begin_query(key, QueryKind::Connections),
            CliRequest::Stop { graceful } => {
                info!("stop requested from the CLI (graceful: {graceful})");
                let done = CliReply::Done {
                    message: "stopping".into(),
                    pids: Vec::new(),
                };
                self.clients.reply(&self.base.poll, key, done);
                self.begin_stop(graceful);
            }
            CliRequest::Admin { event } => {
                info!("admin change from the CLI: {event:?}");
                let told = self.base.tell_all(&MasterMsg::Admin { event });
                let done = CliReply::Done {
                    message: format!("told {told} workers"),
                    pids: Vec::new(),
                };
                self.clients.reply(&self.base.poll, key, done);
            }
            CliRequest::Reload { graceful } => {
                info!("reload requested from the CLI (graceful: {graceful})");
                let r = self
                    .reload
                    .begin(&mut self.base, &mut self.clients, graceful, Some(key));
                if let Err(reason) = r {
                    self.clients
                        .reply(&self.base.poll, key, CliReply::Error { reason });
                }
            }
        }
    }

    fn begin_query(&mut self, client: usize, kind: QueryKind) {
        let reloading = self.reload.active();
        self.queries
            .begin(&mut self.base, &mut self.clients, reloading, client, kind);
    }

    fn on_proc_event(&mut self, key: usize) {
        self.base.fill(key);
        while let Some(msg) = self.base.next_msg(key) {
            self.on_worker_msg(key, msg);
        }
        self.base.forget_closed_link(key);
    }

    fn on_worker_msg(&mut self, key: usize, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Ready { pid, listeners } => {
                if self.base.mark_ready(key, pid, listeners) {
                    self.on_ready(key);
                }
            }
            WorkerMsg::Failed { reason } => self.base.mark_failed(key, reason),
            WorkerMsg::Adopted { inc, conns } => {
                info!(
                    "{} took over {conns} connections (incarnation {inc:016x})",
                    self.base.label_key(key)
                );
                self.reload
                    .handover_done(&mut self.base, &mut self.clients, key, Some(inc));
            }
            WorkerMsg::HandOverFailed { reason } => {
                warn!("{} starts fresh: {reason}", self.base.label_key(key));
                self.reload
                    .handover_done(&mut self.base, &mut self.clients, key, None);
            }
            WorkerMsg::Status { req, status } => {
                let pid = self.base.pid_of(key);
                self.queries.status(req, pid, status);
                self.queries.finish(
                    &self.base,
                    &mut self.clients,
                    self.reload.active(),
                    Instant::now(),
                );
            }
            WorkerMsg::Connections { req, conns } => {
                let pid = self.base.pid_of(key);
                self.queries.connections(req, pid, conns);
                self.queries.finish(
                    &self.base,
                    &mut self.clients,
                    self.reload.active(),
                    Instant::now(),
                );
            }
        }
    }

    /// A worker reported Ready: finish startup, or advance a reload.
    fn on_ready(&mut self, key: usize) {
        if let Phase::Starting { .. } = self.base.phase {
            self.base.maybe_started();
            return;
        }
        self.reload.on_ready(&mut self.base, &mut self.clients, key);
    }

    /// Reap one exited child, if any. One per turn: reaping a process that held many
    /// descriptors can take the kernel tens of milliseconds (its /proc entries are dropped
    /// then), and the workers' messages meanwhile (a reload's `Adopted` above all) are not
    /// to wait for every retiring worker of a reload to be reaped.
    fn reap_one(&mut self) {
        match process::reap_child() {
            Ok(Some((pid, status))) => self.on_exit(pid, status),
            Ok(None) => self.reaping = false,
            Err(e) => {
                error!("waitpid: {e}");
                self.reaping = false;
            }
        }
    }

    fn on_exit(&mut self, pid: i32, status: i32) {
        let Some(key) = self.base.key_of_pid(pid) else {
            return;
        };
        // The SIGCHLD may be handled before the worker's last messages in the same poll turn: read
        // what it wrote before dying (its `Failed` reason above all) before forgetting it. The pid
        // is reaped, so nothing here may signal it.
        self.base.fill_reaped(key);
        while let Some(msg) = self.base.next_msg_reaped(key) {
            self.on_worker_msg(key, msg);
        }
        let gone = self.base.remove_exited(key, status);
        self.queries.forget(pid);
        self.queries.finish(
            &self.base,
            &mut self.clients,
            self.reload.active(),
            Instant::now(),
        );
        self.reload
            .on_exit(&mut self.base, &mut self.clients, key, &gone);
        if gone.was_current {
            if let Phase::Starting { .. } = self.base.phase {
                self.fail_startup(gone.reason);
            } else {
                self.base.vacate(gone.slot, gone.lived);
            }
        }
        self.reload.advance(&mut self.base, &mut self.clients);
    }

    fn fail_startup(&mut self, reason: String) {
        error!("start failed: {reason}");
        self.base.notify.report(&StartReport::Failed {
            reason: reason.clone(),
        });
        self.enter_stop(false, 1);
    }

    fn begin_stop(&mut self, graceful: bool) {
        if let Some((graceful, code)) = stop::request(&mut self.base, graceful) {
            self.enter_stop(graceful, code);
        }
    }

    /// Give up any reload, then tell every worker to stop.
    fn enter_stop(&mut self, graceful: bool, exit_code: i32) {
        self.reload.abort(
            &mut self.base,
            &mut self.clients,
            "the server is stopping".into(),
        );
        stop::enter(&mut self.base, graceful, exit_code);
    }
}
