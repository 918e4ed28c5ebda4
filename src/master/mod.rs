//! The master process: a small mio loop that supervises the workers.
//!
//! It owns no client connections and runs no app code. Inputs are the signal pipe, the control
//! socket (CLI requests), one control link per worker, and timers (the poll timeout). It spawns
//! workers, respawns the ones that die (with back-off), replaces them one at a time on reload,
//! gathers status, and stops them in order. It never sleeps.

pub mod channel;
pub mod control;
pub mod daemon;
pub mod signals;
pub mod spawn;

use crate::config::Config;
use crate::ipc::{
    CliReply, CliRequest, ConnInfo, ExitStat, MasterMsg, MasterStatus, WorkerMsg, WorkerStatus,
};
use crate::sys::process::{self, ExitKind};
use crate::{error, info, warn};
use channel::Channel;
use daemon::{InstanceLock, ReadyNotify, StartReport};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use signals::{SignalEvent, Signals};
use slab::Slab;
use spawn::{Backoff, SpawnSpec};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

const SIGNAL: Token = Token(0);
const CONTROL: Token = Token(1);
/// Tokens `CLIENT_BASE..PROC_BASE` are CLI clients, `PROC_BASE..` worker links (slab keys).
const CLIENT_BASE: usize = 16;
const PROC_BASE: usize = 1 << 20;
/// More simultaneous CLI clients than this are refused (they are admins, not traffic).
const MAX_CLIENTS: usize = 256;

/// Time every worker gets to report Ready at startup before the start is declared failed.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Time a replacement worker gets to report Ready during a reload before the reload is aborted.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time workers get to answer a status/connections query; silent ones are shown as busy.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the master could not start.
#[derive(Debug)]
pub enum MasterError {
    /// A system call failed while setting up.
    Io(&'static str, io::Error),
    /// A listener's port is taken.
    PortInUse(String),
    /// A listener could not be bound for another reason.
    Bind(String, io::Error),
}

impl fmt::Display for MasterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterError::Io(what, e) => write!(f, "{what}: {e}"),
            MasterError::PortInUse(l) => write!(f, "port in use: {l}"),
            MasterError::Bind(l, e) => write!(f, "cannot listen on {l}: {e}"),
        }
    }
}

impl std::error::Error for MasterError {}

/// Everything the master needs, prepared by `kefu start`.
#[derive(Debug)]
pub struct MasterOptions {
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
pub fn run(opts: MasterOptions) -> i32 {
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

/// A reload in progress: slots still to replace, the replacement being started.
#[derive(Debug)]
struct Reload {
    graceful: bool,
    queue: VecDeque<usize>,
    /// (slot, proc key of the new worker, Ready deadline).
    candidate: Option<(usize, usize, Instant)>,
    /// Old workers told to stop; a fast reload answers once they are gone.
    retiring: Vec<usize>,
    /// CLI clients waiting for the outcome.
    waiters: Vec<usize>,
    /// Another reload was requested meanwhile (it runs next, so it sees the latest binary/config).
    again: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryKind {
    Status,
    Connections,
}

/// A status/connections request fanned out to the workers.
#[derive(Debug)]
struct Query {
    req: u64,
    kind: QueryKind,
    client: usize,
    waiting: Vec<i32>,
    statuses: Vec<WorkerStatus>,
    conns: Vec<ConnInfo>,
    deadline: Instant,
}

/// A connected CLI client.
#[derive(Debug)]
struct Client {
    chan: Channel,
    /// A reply was queued: close once it is flushed.
    replied: bool,
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
    exit_code: Option<i32>,
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
            let signals = Signals::install().map_err(|e| MasterError::Io("signals", e))?;
            let poll = Poll::new().map_err(|e| MasterError::Io("poll", e))?;
            Ok((control, signals, poll))
        };
        let (mut control, signals, poll) = match setup() {
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
                    Token(t) if t >= PROC_BASE => self.on_proc_event(t - PROC_BASE),
                    Token(t) => self.on_client_event(t - CLIENT_BASE),
                }
            }
            self.on_timers(Instant::now());
        }
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

    // ---- spawning -------------------------------------------------------------------------

    fn spawn_proc(&mut self, worker_id: usize) -> io::Result<usize> {
        self.generation += 1;
        // A later master starts at a later microsecond and no master spawns 1000 workers per
        // microsecond of its life, so incarnations never repeat across restarts.
        let inc = self
            .start_micros
            .wrapping_mul(1000)
            .wrapping_add(self.generation);
        let s = self.spawn.spawn(worker_id, inc)?;
        let mut stream = mio::net::UnixStream::from_std(s.control);
        let entry = self.procs.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut stream,
            Token(PROC_BASE + key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Proc {
            worker_id,
            inc,
            pid: s.pid,
            started: Instant::now(),
            state: ProcState::Starting,
            chan: Channel::new(stream),
            listeners: Vec::new(),
            failed: None,
        });
        self.link_peers(key);
        Ok(key)
    }

    /// Give the new worker `key` a bus link to every other live worker (one socketpair per
    /// pair, an end to each, passed over the control channels).
    fn link_peers(&mut self, key: usize) {
        let others: Vec<usize> = self
            .procs
            .iter()
            .map(|(k, _)| k)
            .filter(|&k| k != key)
            .collect();
        for other in others {
            let (a, b) = match std::os::unix::net::UnixStream::pair() {
                Ok(p) => p,
                Err(e) => {
                    error!("socketpair for the bus: {e}");
                    continue;
                }
            };
            let (new_inc, new_id) = (self.procs[key].inc, self.procs[key].worker_id);
            let (old_inc, old_id) = (self.procs[other].inc, self.procs[other].worker_id);
            self.procs[other].chan.send_with_fd(
                &MasterMsg::Peer {
                    inc: new_inc,
                    worker_id: new_id,
                },
                a.into(),
            );
            self.procs[key].chan.send_with_fd(
                &MasterMsg::Peer {
                    inc: old_inc,
                    worker_id: old_id,
                },
                b.into(),
            );
        }
    }

    fn spawn_into_slot(&mut self, slot: usize) -> io::Result<()> {
        let key = self.spawn_proc(slot)?;
        self.slots[slot].current = Some(key);
        self.slots[slot].respawn_at = None;
        Ok(())
    }

    // ---- events ----------------------------------------------------------------------------

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

    fn accept_clients(&mut self) {
        loop {
            match self.control.accept() {
                Ok((mut stream, _)) => {
                    if self.clients.len() >= MAX_CLIENTS {
                        warn!("too many control clients, refusing one");
                        continue;
                    }
                    let entry = self.clients.vacant_entry();
                    let token = Token(CLIENT_BASE + entry.key());
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("control client: {e}");
                        continue;
                    }
                    entry.insert(Client {
                        chan: Channel::new(stream),
                        replied: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the next readiness event retries; nothing else to do.
                    warn!("control accept: {e}");
                    break;
                }
            }
        }
    }

    fn on_client_event(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        c.chan.fill();
        c.chan.flush();
        let req = if c.replied {
            None
        } else {
            match c.chan.next_msg::<CliRequest>() {
                Ok(r) => r,
                Err(e) => {
                    self.reply(
                        key,
                        CliReply::Error {
                            reason: e.to_string(),
                        },
                    );
                    return;
                }
            }
        };
        if let Some(req) = req {
            self.on_request(key, req);
        }
        self.maybe_close_client(key);
    }

    fn maybe_close_client(&mut self, key: usize) {
        let close = match self.clients.get(key) {
            Some(c) => c.chan.closed || (c.replied && c.chan.flushed()),
            None => false,
        };
        if close {
            let mut c = self.clients.remove(key);
            let _ = self.poll.registry().deregister(&mut c.chan.stream);
        }
    }

    fn reply(&mut self, key: usize, msg: CliReply) {
        if let Some(c) = self.clients.get_mut(key) {
            c.chan.send(&msg);
            c.replied = true;
        }
        self.maybe_close_client(key);
    }

    fn on_request(&mut self, key: usize, req: CliRequest) {
        match req {
            CliRequest::Status => self.begin_query(key, QueryKind::Status),
            CliRequest::Connections => self.begin_query(key, QueryKind::Connections),
            CliRequest::Stop { graceful } => {
                info!("stop requested from the CLI (graceful: {graceful})");
                self.reply(
                    key,
                    CliReply::Done {
                        message: "stopping".into(),
                        pids: Vec::new(),
                    },
                );
                self.begin_stop(graceful);
            }
            CliRequest::Reload { graceful } => {
                info!("reload requested from the CLI (graceful: {graceful})");
                if let Err(reason) = self.begin_reload(graceful, Some(key)) {
                    self.reply(key, CliReply::Error { reason });
                }
            }
        }
    }

    fn on_proc_event(&mut self, key: usize) {
        let Some(p) = self.procs.get_mut(key) else {
            return;
        };
        p.chan.fill();
        p.chan.flush();
        loop {
            let Some(p) = self.procs.get_mut(key) else {
                return;
            };
            match p.chan.next_msg::<WorkerMsg>() {
                Ok(Some(msg)) => self.on_worker_msg(key, msg),
                Ok(None) => break,
                Err(e) => {
                    // A worker speaking garbage is broken: it gets replaced like a crashed one.
                    error!("worker[{}:{}]: {e}; killing it", self.cfg.app, p.pid);
                    let _ = process::kill(p.pid, libc::SIGKILL);
                    p.state = ProcState::Killed;
                    p.chan.closed = true;
                    break;
                }
            }
        }
        if let Some(p) = self.procs.get_mut(key) {
            if p.chan.closed {
                // EOF: the worker is exiting; SIGCHLD will tell us when it is gone.
                let _ = self.poll.registry().deregister(&mut p.chan.stream);
            }
        }
    }

    fn on_worker_msg(&mut self, key: usize, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Ready { pid, listeners } => {
                let Some(p) = self.procs.get_mut(key) else {
                    return;
                };
                if p.state != ProcState::Starting {
                    return;
                }
                p.state = ProcState::Running;
                p.listeners = listeners;
                let worker_id = p.worker_id;
                info!("{} ready (worker {worker_id})", self.label(pid as i32));
                self.on_ready(key);
            }
            WorkerMsg::Failed { reason } => {
                let Some(p) = self.procs.get_mut(key) else {
                    return;
                };
                let pid = p.pid;
                p.failed = Some(reason.clone());
                error!("{} failed to start: {reason}", self.label(pid));
            }
            WorkerMsg::Status { req, status } => {
                let pid = self.procs.get(key).map(|p| p.pid).unwrap_or(0);
                if let Some(q) = self.queries.iter_mut().find(|q| q.req == req) {
                    if q.waiting.contains(&pid) {
                        q.waiting.retain(|&w| w != pid);
                        q.statuses.push(status);
                    }
                }
                self.finish_queries(Instant::now());
            }
            WorkerMsg::Connections { req, conns } => {
                let pid = self.procs.get(key).map(|p| p.pid).unwrap_or(0);
                if let Some(q) = self.queries.iter_mut().find(|q| q.req == req) {
                    if q.waiting.contains(&pid) {
                        q.waiting.retain(|&w| w != pid);
                        q.conns.extend(conns);
                    }
                }
                self.finish_queries(Instant::now());
            }
        }
    }

    /// A worker reported Ready: finish startup, or advance a reload.
    fn on_ready(&mut self, key: usize) {
        if let Phase::Starting { .. } = self.phase {
            let all = self.slots.iter().all(|s| {
                s.current
                    .and_then(|k| self.procs.get(k))
                    .is_some_and(|p| p.state == ProcState::Running)
            });
            if all {
                self.phase = Phase::Running;
                let report = StartReport::Ready {
                    master_pid: std::process::id(),
                    app: self.cfg.app.clone(),
                    workers: self.slots.len(),
                    listeners: self.listen_list(),
                };
                info!("all {} workers ready", self.slots.len());
                self.notify.report(&report);
            }
            return;
        }
        let is_candidate = self
            .reload
            .as_ref()
            .and_then(|r| r.candidate)
            .is_some_and(|(_, k, _)| k == key);
        if is_candidate {
            self.swap_candidate();
        }
    }

    // ---- reaping -----------------------------------------------------------------------------

    fn reap(&mut self) {
        loop {
            match process::reap_child() {
                Ok(Some((pid, status))) => self.on_exit(pid, status),
                Ok(None) => break,
                Err(e) => {
                    error!("waitpid: {e}");
                    break;
                }
            }
        }
    }

    fn on_exit(&mut self, pid: i32, status: i32) {
        let Some(key) = self
            .procs
            .iter()
            .find(|(_, p)| p.pid == pid)
            .map(|(k, _)| k)
        else {
            return;
        };
        let mut p = self.procs.remove(key);
        let _ = self.poll.registry().deregister(&mut p.chan.stream);
        *self.exits.entry(status).or_insert(0) += 1;
        let how = match ExitKind::from_raw(status) {
            ExitKind::Code(c) => format!("exit code {c}"),
            ExitKind::Signal(s) => format!("signal {}", process::signal_name(s)),
        };
        let expected = matches!(p.state, ProcState::Stopping { .. }) && status == 0;
        if expected {
            info!("{} exit with status {status} ({how})", self.label(pid));
        } else {
            warn!("{} exit with status {status} ({how})", self.label(pid));
        }
        for q in &mut self.queries {
            q.waiting.retain(|&w| w != pid);
        }
        self.finish_queries(Instant::now());

        let slot = p.worker_id;
        let was_current = self.slots.get(slot).and_then(|s| s.current) == Some(key);
        let reason = p
            .failed
            .take()
            .unwrap_or_else(|| format!("worker {slot} exited with status {status} ({how})"));
        if let Some(r) = &mut self.reload {
            r.retiring.retain(|&k| k != key);
            if r.candidate.is_some_and(|(_, k, _)| k == key) {
                r.candidate = None;
                self.abort_reload(format!("new worker {slot} did not start: {reason}"));
            }
        }
        if was_current {
            self.slots[slot].current = None;
            match self.phase {
                Phase::Starting { .. } => self.fail_startup(reason),
                Phase::Running => {
                    let delay = self.slots[slot].backoff.on_exit(p.started.elapsed());
                    if !delay.is_zero() {
                        warn!(
                            "worker {slot} is crash-looping, respawn in {:.1}s",
                            delay.as_secs_f64()
                        );
                    }
                    self.slots[slot].respawn_at = Some(Instant::now() + delay);
                }
                Phase::Stopping { .. } => {}
            }
        }
        self.advance_reload();
    }

    // ---- stop ----------------------------------------------------------------------------------

    fn fail_startup(&mut self, reason: String) {
        error!("start failed: {reason}");
        self.notify.report(&StartReport::Failed {
            reason: reason.clone(),
        });
        self.enter_stop(false, 1);
    }

    fn begin_stop(&mut self, graceful: bool) {
        match self.phase {
            Phase::Stopping {
                graceful: false, ..
            } if !graceful => {
                // Second fast stop (e.g. Ctrl-C twice): do not wait any longer.
                warn!("second stop request: killing all workers now");
                self.kill_all();
            }
            Phase::Stopping { graceful: true, .. } if !graceful => {
                info!("fast stop requested during a graceful stop");
                self.enter_stop(false, 0);
            }
            Phase::Stopping { .. } => {}
            Phase::Starting { .. } => {
                self.notify.report(&StartReport::Failed {
                    reason: "stopped during startup".into(),
                });
                self.enter_stop(graceful, 1);
            }
            Phase::Running => self.enter_stop(graceful, 0),
        }
    }

    /// Tell every worker to stop and arm the SIGKILL deadline.
    fn enter_stop(&mut self, graceful: bool, exit_code: i32) {
        let exit_code = match self.phase {
            Phase::Stopping { exit_code: c, .. } => c.max(exit_code),
            _ => exit_code,
        };
        self.phase = Phase::Stopping {
            graceful,
            exit_code,
        };
        info!(
            "stopping {} workers ({})",
            self.procs.len(),
            if graceful { "graceful" } else { "fast" }
        );
        if self.reload.is_some() {
            self.abort_reload("the server is stopping".into());
        }
        for s in &mut self.slots {
            s.respawn_at = None;
        }
        let kill_at = self.kill_deadline(graceful);
        let msg = MasterMsg::Stop {
            graceful,
            restart: false,
        };
        for (_, p) in self.procs.iter_mut() {
            if p.state == ProcState::Killed {
                continue;
            }
            stop_proc(p, &msg, kill_at);
        }
    }

    fn kill_deadline(&self, graceful: bool) -> Option<Instant> {
        let now = Instant::now();
        if !graceful {
            Some(now + self.cfg.stop_timeout)
        } else if !self.cfg.graceful_timeout.is_zero() {
            // The worker enforces graceful_timeout itself; this is the backstop.
            Some(now + self.cfg.graceful_timeout + self.cfg.stop_timeout)
        } else {
            None
        }
    }

    fn kill_all(&mut self) {
        for (_, p) in self.procs.iter_mut() {
            let _ = process::kill(p.pid, libc::SIGKILL);
            p.state = ProcState::Killed;
        }
    }

    // ---- reload --------------------------------------------------------------------------------

    fn begin_reload(&mut self, graceful: bool, client: Option<usize>) -> Result<(), String> {
        match self.phase {
            Phase::Starting { .. } => return Err("kefu is still starting".into()),
            Phase::Stopping { .. } => return Err("kefu is stopping".into()),
            Phase::Running => {}
        }
        if let Some(r) = &mut self.reload {
            // Finish the current pass, then start another so every slot runs the newest build.
            r.again = Some(graceful);
            r.waiters.extend(client);
            return Ok(());
        }
        info!(
            "reloading {} workers one at a time ({})",
            self.slots.len(),
            if graceful { "graceful" } else { "fast" }
        );
        self.reload = Some(Reload {
            graceful,
            queue: (0..self.slots.len()).collect(),
            candidate: None,
            retiring: Vec::new(),
            waiters: client.into_iter().collect(),
            again: None,
        });
        self.advance_reload();
        Ok(())
    }

    /// Start the next replacement, or finish the reload when every slot is done.
    fn advance_reload(&mut self) {
        loop {
            let Some(r) = &mut self.reload else {
                return;
            };
            if r.candidate.is_some() {
                return;
            }
            let Some(slot) = r.queue.pop_front() else {
                break;
            };
            if self.slots[slot].current.is_none() {
                // Crashed and waiting for its respawn, which will exec the new binary anyway.
                continue;
            }
            match self.spawn_proc(slot) {
                Ok(key) => {
                    if let Some(r) = &mut self.reload {
                        r.candidate = Some((slot, key, Instant::now() + READY_TIMEOUT));
                    }
                    return;
                }
                Err(e) => {
                    self.abort_reload(format!("cannot spawn worker {slot}: {e}"));
                    return;
                }
            }
        }
        // Queue empty, no candidate: done once fast-reloaded old workers are gone.
        let Some(r) = &self.reload else { return };
        if !r.graceful && !r.retiring.is_empty() {
            return;
        }
        let Some(r) = self.reload.take() else { return };
        let pids: Vec<u32> = self
            .slots
            .iter()
            .filter_map(|s| s.current.and_then(|k| self.procs.get(k)))
            .map(|p| p.pid as u32)
            .collect();
        if let Some(graceful) = r.again {
            // Waiters move to the follow-up reload.
            self.reload = None;
            let waiters = r.waiters;
            if self.begin_reload(graceful, None).is_ok() {
                if let Some(next) = &mut self.reload {
                    next.waiters = waiters;
                    return;
                }
            }
            for w in waiters {
                self.reply(
                    w,
                    CliReply::Done {
                        message: "reloaded".into(),
                        pids: pids.clone(),
                    },
                );
            }
            return;
        }
        info!("reload complete, workers: {pids:?}");
        for w in r.waiters {
            self.reply(
                w,
                CliReply::Done {
                    message: "reloaded".into(),
                    pids: pids.clone(),
                },
            );
        }
    }

    /// The candidate is Ready: it becomes the slot's worker and the old one is told to go.
    fn swap_candidate(&mut self) {
        let Some(r) = &mut self.reload else { return };
        let Some((slot, key, _)) = r.candidate.take() else {
            return;
        };
        let graceful = r.graceful;
        let old = self.slots[slot].current.replace(key);
        if let Some(old) = old {
            r.retiring.push(old);
            let kill_at = if graceful {
                self.kill_deadline(true)
            } else {
                Some(Instant::now() + self.cfg.stop_timeout)
            };
            let msg = MasterMsg::Stop {
                graceful,
                restart: true,
            };
            if let Some(p) = self.procs.get_mut(old) {
                stop_proc(p, &msg, kill_at);
            }
        }
        self.advance_reload();
    }

    /// Give up on the reload: kill an unready candidate, keep the old workers, tell the waiters.
    fn abort_reload(&mut self, reason: String) {
        let Some(r) = self.reload.take() else { return };
        error!("reload aborted: {reason}");
        if let Some((_, key, _)) = r.candidate {
            if let Some(p) = self.procs.get_mut(key) {
                let _ = process::kill(p.pid, libc::SIGKILL);
                p.state = ProcState::Killed;
            }
        }
        for w in r.waiters {
            self.reply(
                w,
                CliReply::Error {
                    reason: format!(
                        "reload failed: {reason}; the remaining old workers keep running"
                    ),
                },
            );
        }
    }

    // ---- queries -------------------------------------------------------------------------------

    fn begin_query(&mut self, client: usize, kind: QueryKind) {
        let req = self.next_req;
        self.next_req += 1;
        let msg = match kind {
            QueryKind::Status => MasterMsg::Status { req },
            QueryKind::Connections => MasterMsg::Connections { req },
        };
        let mut waiting = Vec::new();
        for (_, p) in self.procs.iter_mut() {
            if p.chan.closed {
                continue;
            }
            p.chan.send(&msg);
            if !p.chan.closed {
                waiting.push(p.pid);
            }
        }
        self.queries.push(Query {
            req,
            kind,
            client,
            waiting,
            statuses: Vec::new(),
            conns: Vec::new(),
            deadline: Instant::now() + QUERY_TIMEOUT,
        });
        self.finish_queries(Instant::now());
    }

    /// Answer every query that is complete or past its deadline.
    fn finish_queries(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.queries.len() {
            let q = &self.queries[i];
            if !q.waiting.is_empty() && q.deadline > now {
                i += 1;
                continue;
            }
            let q = self.queries.swap_remove(i);
            let reply = match q.kind {
                QueryKind::Status => CliReply::Status {
                    status: self.master_status(q.statuses),
                },
                QueryKind::Connections => CliReply::Connections { conns: q.conns },
            };
            self.reply(q.client, reply);
        }
    }

    fn master_status(&self, answered: Vec<WorkerStatus>) -> MasterStatus {
        let mut workers: Vec<WorkerStatus> = self
            .procs
            .iter()
            .map(
                |(_, p)| match answered.iter().find(|s| s.pid == p.pid as u32) {
                    Some(s) => {
                        let mut s = s.clone();
                        s.worker_id = p.worker_id;
                        s
                    }
                    None => WorkerStatus {
                        pid: p.pid as u32,
                        worker_id: p.worker_id,
                        inc: p.inc,
                        listening: p.listeners.join(" "),
                        name: self.cfg.app.clone(),
                        state: "busy".into(),
                        ..Default::default()
                    },
                },
            )
            .collect();
        workers.sort_by_key(|w| (w.worker_id, w.pid));
        let mut exits: Vec<ExitStat> = self
            .exits
            .iter()
            .map(|(&status, &count)| ExitStat {
                name: self.cfg.app.clone(),
                status,
                count,
            })
            .collect();
        if !self.exits.contains_key(&0) {
            // Workerman always lists status 0, even with no exits.
            exits.insert(
                0,
                ExitStat {
                    name: self.cfg.app.clone(),
                    status: 0,
                    count: 0,
                },
            );
        }
        let phase = match self.phase {
            Phase::Starting { .. } => "starting",
            Phase::Running if self.reload.is_some() => "reloading",
            Phase::Running => "running",
            Phase::Stopping { .. } => "stopping",
        };
        MasterStatus {
            version: format!("kefu/{}", env!("CARGO_PKG_VERSION")),
            master_pid: std::process::id(),
            start_time: self.start_time,
            app: self.cfg.app.clone(),
            worker_count: self.slots.len(),
            phase: phase.into(),
            exits,
            workers,
        }
    }

    // ---- timers --------------------------------------------------------------------------------

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
        if let Some((_, _, t)) = self.reload.as_ref().and_then(|r| r.candidate) {
            d.push(t);
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
                    warn!(
                        "worker[{}:{}] still alive after its stop timeout, SIGKILL",
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
        if let Some((slot, _, t)) = self.reload.as_ref().and_then(|r| r.candidate) {
            if now >= t {
                self.abort_reload(format!(
                    "new worker {slot} not ready within {}s",
                    READY_TIMEOUT.as_secs()
                ));
            }
        }
        self.finish_queries(now);
    }
}

/// Send Stop, or signal if the link is gone, and arm the kill deadline.
fn stop_proc(p: &mut Proc, msg: &MasterMsg, kill_at: Option<Instant>) {
    p.chan.send(msg);
    if p.chan.closed {
        // No link left to ask politely: the signal is the fallback.
        let _ = process::kill(p.pid, libc::SIGTERM);
    }
    p.state = ProcState::Stopping { kill_at };
}
