//! The master process: a small mio loop that supervises the workers.
//!
//! It owns no client connections and runs no app code. Inputs are the signal pipe, the control
//! socket (CLI requests), one control link per worker, and timers (the poll timeout). It spawns
//! workers, respawns the ones that die (with back-off), replaces them one at a time on reload,
//! gathers status, and stops them in order. It never sleeps.

pub(crate) mod channel;
pub(crate) mod control;
pub(crate) mod daemon;
pub(crate) mod signals;
pub(crate) mod spawn;

mod clients;
mod cluster;
mod procs;
mod query;
mod reload;
mod stop;

use crate::config::Config;
use crate::ipc::{
    CliReply, CliRequest, ConnInfo, ExitStat, MasterMsg, MasterStatus, WorkerMsg, WorkerStatus,
};
use crate::sys::process::{self, ExitKind};
use crate::{error, info, warn};
use channel::Channel;
use clients::Client;
use daemon::{InstanceLock, ReadyNotify, StartReport};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use query::Query;
use reload::{Reload, READY_TIMEOUT};
use signals::{SignalEvent, Signals};
use slab::Slab;
use spawn::{Backoff, SpawnSpec};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
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

/// Why the master could not start.
#[derive(Debug)]
pub(crate) enum MasterError {
    /// A system call failed while setting up.
    Io(&'static str, io::Error),
    /// A listener's port is taken.
    PortInUse(String),
    /// A listener could not be bound for another reason.
    Bind(String, io::Error),
    /// A TLS listener's certificate or key cannot be used.
    Tls(String, Box<crate::tls::TlsError>),
}

impl fmt::Display for MasterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterError::Io(what, e) => write!(f, "{what}: {e}"),
            MasterError::PortInUse(l) => write!(f, "port in use: {l}"),
            MasterError::Bind(l, e) => write!(f, "cannot listen on {l}: {e}"),
            MasterError::Tls(l, e) => write!(f, "certificate of {l}: {e}"),
        }
    }
}

impl std::error::Error for MasterError {}

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

/// One worker slot's listening sockets, one per listener of the config (SO_REUSEPORT: the
/// kernel spreads new connections over the slots).
fn bind_slot(cfg: &Config) -> Result<Vec<(String, std::net::TcpListener)>, MasterError> {
    cfg.listen
        .iter()
        .map(|l| {
            crate::sys::socket::bind_listener(l.addr, true)
                .map(|sock| (l.to_string(), sock))
                .map_err(|e| MasterError::Bind(l.to_string(), e))
        })
        .collect()
}

/// Read and check every TLS listener's certificates and keys (`tls`: by listen URL), as the
/// workers will: a bad path, PEM or key fails here with its reason instead of in each worker.
fn check_tls(listen: &[crate::config::ListenSpec]) -> Result<(), MasterError> {
    for l in listen {
        if let Some(files) = &l.certs {
            let http = l.scheme != crate::config::Scheme::Text;
            crate::tls::Acceptor::load(files, http)
                .map_err(|e| MasterError::Tls(l.to_string(), Box::new(e)))?;
        }
    }
    Ok(())
}

/// Check every listener is free by binding it without SO_REUSEPORT and dropping it.
fn check_ports(cfg: &Config) -> Result<(), MasterError> {
    for l in &cfg.listen {
        match crate::sys::socket::bind_listener(l.addr, false) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                return Err(MasterError::PortInUse(l.to_string()))
            }
            Err(e) => return Err(MasterError::Bind(l.to_string(), e)),
        }
    }
    Ok(())
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
    /// Serving (a reload may be in progress, see `Master::reload`).
    Running,
    /// Stopping: no respawns; exit once every worker is reaped.
    Stopping { graceful: bool, exit_code: i32 },
}

struct Master {
    cfg: Config,
    spawn: SpawnSpec,
    notify: ReadyNotify,
    poll: Poll,
    signals: Signals,
    control: mio::net::UnixListener,
    procs: Slab<Proc>,
    slots: Vec<Slot>,
    clients: Slab<Client>,
    phase: Phase,
    reload: Option<Reload>,
    queries: Vec<Query>,
    next_req: u64,
    generation: u64,
    start_time: u64,
    /// Master start in microseconds since the epoch: the base of worker incarnations.
    start_micros: u64,
    /// Exit counts per raw wait status (Workerman's exit_status table).
    exits: BTreeMap<i32, u64>,
    /// Listening sockets per worker slot, owned here for the master's whole life: the worker
    /// of a slot and its successor at a reload serve the same sockets, so a worker that goes
    /// away never takes its accept queue with it (a closed SO_REUSEPORT socket resets the
    /// connections queued on it).
    slot_listeners: Vec<Vec<(String, std::net::TcpListener)>>,
    exit_code: Option<i32>,
    /// The cluster threads, when `[cluster]` is configured.
    cluster: Option<crate::cluster::Cluster>,
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
            check_ports(&cfg)?;
            check_tls(&cfg.listen)?;
            let listeners = (0..cfg.workers)
                .map(|_| bind_slot(&cfg))
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
            slot_listeners,
            notify,
            poll,
            signals,
            control,
            procs: Slab::new(),
            slots,
            clients: Slab::new(),
            phase: Phase::Starting {
                deadline: Instant::now() + START_TIMEOUT,
            },
            reload: None,
            queries: Vec::new(),
            next_req: 1,
            generation: 0,
            start_time: crate::log::now_secs(),
            start_micros: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
            exits: BTreeMap::new(),
            exit_code: None,
            cluster: None,
            spawn,
            cfg,
        })
    }

    fn run(mut self) -> i32 {
        info!(
            "kefu/{} master started: app {}, {} workers, listen {}",
            env!("CARGO_PKG_VERSION"),
            self.cfg.app,
            self.cfg.workers,
            self.listen_list().join(" ")
        );
        if let Err(e) = self.start_cluster() {
            self.fail_startup(format!("cannot start the cluster threads: {e}"));
        }
        for slot in 0..self.slots.len() {
            if let Err(e) = self.spawn_into_slot(slot) {
                self.fail_startup(format!("cannot spawn worker {slot}: {e}"));
                break;
            }
        }
        let mut events = Events::with_capacity(128);
        loop {
            if self.phase_done() {
                break;
            }
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                error!("poll failed: {e}; killing workers");
                self.kill_all();
                self.exit_code = Some(1);
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    SIGNAL => self.on_signals(),
                    CONTROL => self.accept_clients(),
                    CLUSTER => self.on_cluster_wake(),
                    Token(t) if t >= PROC_BASE => self.on_proc_event(t - PROC_BASE),
                    Token(t) => self.on_client_event(t - CLIENT_BASE),
                }
            }
            self.on_timers(Instant::now());
        }
        self.leave_cluster();
        let _ = std::fs::remove_file(self.cfg.control_socket());
        let code = self.exit_code.unwrap_or(0);
        info!("kefu master exits ({code})");
        code
    }

    /// In Stopping, true once every worker is reaped (and sets the exit code).
    fn phase_done(&mut self) -> bool {
        if self.exit_code.is_some() {
            return true;
        }
        if let Phase::Stopping { exit_code, .. } = self.phase {
            if self.procs.is_empty() {
                self.exit_code = Some(exit_code);
                return true;
            }
        }
        false
    }

    fn listen_list(&self) -> Vec<String> {
        self.cfg.listen.iter().map(|l| l.to_string()).collect()
    }

    fn label(&self, pid: i32) -> String {
        format!("worker[{}:{pid}]", self.cfg.app)
    }

    fn on_signals(&mut self) {
        for (sig, ev) in self.signals.drain() {
            match ev {
                SignalEvent::Child => self.reap(),
                SignalEvent::Stop { graceful } => {
                    info!("received {}", process::signal_name(sig));
                    self.begin_stop(graceful);
                }
                SignalEvent::Reload { graceful } => {
                    info!("received {}", process::signal_name(sig));
                    if let Err(e) = self.begin_reload(graceful, None) {
                        warn!("reload refused: {e}");
                    }
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Vec<Instant> = Vec::new();
        if let Phase::Starting { deadline } = self.phase {
            d.push(deadline);
        }
        d.extend(self.procs.iter().filter_map(|(_, p)| match p.state {
            ProcState::Stopping { kill_at } => kill_at,
            _ => None,
        }));
        d.extend(self.slots.iter().filter_map(|s| s.respawn_at));
        d.extend(self.queries.iter().map(|q| q.deadline));
        if let Some(c) = self.reload.as_ref().and_then(|r| r.candidate.as_ref()) {
            d.push(c.deadline);
        }
        d.into_iter().min()
    }

    fn on_timers(&mut self, now: Instant) {
        if let Phase::Starting { deadline } = self.phase {
            if now >= deadline {
                self.fail_startup(format!(
                    "workers not ready within {}s",
                    START_TIMEOUT.as_secs()
                ));
            }
        }
        for (_, p) in self.procs.iter_mut() {
            if let ProcState::Stopping { kill_at: Some(t) } = p.state {
                if now >= t {
                    // Idle connections never hold a worker up (it closes them at once), so a
                    // worker still here is stuck: in app code, or on a client that will not
                    // take its last bytes.
                    warn!(
                        "worker[{}:{}] is stuck: still alive after stop_timeout; SIGKILL",
                        self.cfg.app, p.pid
                    );
                    let _ = process::kill(p.pid, libc::SIGKILL);
                    p.state = ProcState::Killed;
                }
            }
        }
        if self.phase == Phase::Running {
            for slot in 0..self.slots.len() {
                if self.slots[slot].respawn_at.is_some_and(|t| now >= t) {
                    if let Err(e) = self.spawn_into_slot(slot) {
                        error!("cannot respawn worker {slot}: {e}");
                        let delay = self.slots[slot].backoff.on_exit(Duration::ZERO);
                        self.slots[slot].respawn_at = Some(now + delay);
                    }
                }
            }
        }
        let late = self
            .reload
            .as_ref()
            .and_then(|r| r.candidate.as_ref())
            .filter(|c| now >= c.deadline)
            .map(|c| (c.slot, matches!(c.stage, reload::Stage::Adopting)));
        if let Some((slot, adopting)) = late {
            let why = if adopting {
                format!(
                    "new worker {slot} did not take the connections over within {}s",
                    reload::HANDOVER_TIMEOUT.as_secs()
                )
            } else {
                format!(
                    "new worker {slot} not ready within {}s",
                    READY_TIMEOUT.as_secs()
                )
            };
            self.abort_reload(why);
        }
        self.finish_queries(now);
    }
}
