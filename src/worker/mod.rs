//! One worker process: a single mio loop over its listeners, its connections (a slab) and
//! the control channel to the master.
//!
//! Loop discipline: every event may be spurious; reads go until WouldBlock or a per-event
//! budget (the rest is picked up next turn, since epoll is edge-triggered); output queued
//! during a turn is written once at the end of the turn; timers fire between turns. No
//! blocking call and no unbounded work happens per event.
//!
//! The worker is split into parts, each a type with its methods in one file, that the loop in
//! this file dispatches to: [`accept::Listeners`] (accepting, the connection cap), the reading
//! and decoding of client bytes ([`read::Reader`], over `input.rs`), the bus links
//! ([`bus_io::Links`]), the master's channel ([`control::Control`]), heartbeats, and the
//! closes and deadlines (free functions in `close.rs` and `deadline.rs`). Every part works on
//! the same [`Base`] (the poll, the state, the app), passed by `&mut` beside the part's own
//! state so no event pays for an indirection. A reload's hand-over (`handover.rs`) moves
//! every connection of a retiring worker to its successor.

mod accept;
mod adopt;
mod bus_io;
mod close;
mod control;
mod deadline;
mod flush;
mod handover;
mod heartbeat;
mod input;
mod peers;
mod quiet;
mod read;
mod tls;

use crate::api::{App, IoReady, TimerId, APP_IO_BASE};
use crate::config::Config;
use crate::ipc::{MasterMsg, WorkerMsg};
use crate::protocol::http::request::RequestLimits;
use crate::protocol::websocket::close as ws_close;
use crate::state::timer::Due;
use crate::state::Core;
use input::{guarded, InputSettings};
use mio::{Events, Poll, Token};
use std::io;
use std::time::{Duration, Instant};

/// Token of the master control channel.
const CONTROL: Token = Token(usize::MAX - 1);
/// Token of the waker app threads use.
const WAKE: Token = Token(usize::MAX - 2);
/// Token of a retiring worker's hand-over socket while it copies its connections.
const HANDOVER: Token = Token(usize::MAX - 3);
/// Listener `i` has token `LISTENER_BASE + i`; connection tokens are slab slots, far below.
const LISTENER_BASE: usize = usize::MAX - 1024;
/// Bus link `i` has token `BUS_BASE + i` (below the listeners).
const BUS_BASE: usize = usize::MAX - (1 << 20);
/// Shared read buffer: one per worker instead of one per connection.
const SCRATCH: usize = 64 * 1024;

/// How the worker is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    /// Not stopping.
    No,
    /// Listeners closed; waiting for connections to end by themselves.
    Draining,
    /// Connections are being closed.
    Closing,
}

/// What every part of the loop works on. Kept apart from the parts' own state so a part can
/// take `&mut Base` beside `&mut self` (borrow splitting, no extra indirection).
struct Base {
    poll: Poll,
    core: Core,
    app: Box<dyn App>,
    /// The one read buffer of the worker, for clients and bus links alike.
    scratch: Vec<u8>,
    /// TLS ciphertext: fresh from a client's socket (decrypted into `scratch`), or records
    /// being written.
    tls_scratch: crate::tls::session::Scratch,
    /// Connections per peer address, against `limits.max_connections_per_ip`.
    peers: peers::PeerCounts,
    /// Capacity of every connection's `in_buf` together, plus what each TLS session holds of
    /// its peer's input (a reserve while its handshake runs), against
    /// `limits.max_buffered_input`.
    buffered_input: usize,
    /// Warnings that a flood could repeat (EMFILE, caps) are logged at most once per period.
    quiet: quiet::Quiet,
}

/// The worker: the shared base, its parts, and how it is stopping.
struct Worker {
    base: Base,
    app_name: String,
    cfg: Config,
    stopping: Stopping,
    listeners: accept::Listeners,
    reader: read::Reader,
    links: bus_io::Links,
    control: control::Control,
    /// Gateway heartbeats (None: `ping_interval` is 0).
    heartbeat: Option<heartbeat::Heartbeat>,
    /// Retiring by hand-over: the copy to the successor under way, until the commit.
    handing: Option<handover::Outgoing>,
    /// When the hand-over began, and the scheduler's counters then (for its log line).
    handover_started: Option<(Instant, Option<(Duration, Duration)>)>,
    /// A successor's socket to its predecessor, until the hand-over is taken.
    incoming: Option<std::os::unix::net::UnixStream>,
}

/// Run a worker with `app` until it is told to stop; returns the process exit code. `control`
/// is the socket to the master (or to a test standing in for it); `inherited` are the
/// listening sockets the master keeps for this worker's slot, by listen URL (a listener of the
/// config without one is bound here); `handover`, for a successor at a reload, the socket on
/// which its predecessor hands its connections over.
pub fn run(
    cfg: Config,
    app: Box<dyn App>,
    worker_id: usize,
    inc: u64,
    control: std::os::unix::net::UnixStream,
    inherited: Vec<(String, std::net::TcpListener)>,
    handover: Option<std::os::unix::net::UnixStream>,
) -> i32 {
    crate::sys::alloc::tune_for_server();
    let ctl = match control::Control::new(control) {
        Ok(c) => c,
        Err(e) => {
            crate::error!("worker {worker_id}: control channel unusable: {e}");
            return 1;
        }
    };
    match Worker::new(cfg, app, worker_id, inc, ctl, inherited) {
        Ok(mut w) => {
            w.incoming = handover;
            w.run()
        }
        Err(boxed) => {
            let (reason, mut ctl) = *boxed;
            fail(worker_id, reason, &mut ctl)
        }
    }
}

/// The config's limits, tightened by what the app needs: the smaller message bound, and the
/// app's login and idle deadlines where the config leaves them to the app.
fn effective_limits(
    cfg: &crate::config::Limits,
    t: &crate::api::Transport,
) -> crate::config::Limits {
    let mut l = cfg.clone();
    l.max_package_size = l.max_package_size.min(t.max_message);
    if l.idle_timeout.is_zero() {
        l.idle_timeout = t.idle_timeout.unwrap_or_default();
    }
    if l.login_timeout.is_zero() {
        l.login_timeout = t.login_timeout.unwrap_or_default();
    }
    l
}

/// " (C ms on a CPU, W ms waiting for one)" since `before`: where a hand-over's wall time went
/// (the rest is waiting on the other side), or nothing where the scheduler does not say.
fn sched_since(before: Option<(Duration, Duration)>) -> String {
    match (before, crate::sys::process::thread_sched_times()) {
        (Some((c0, w0)), Some((c1, w1))) => format!(
            " ({} ms on a CPU, {} ms waiting for one)",
            c1.saturating_sub(c0).as_millis(),
            w1.saturating_sub(w0).as_millis()
        ),
        _ => String::new(),
    }
}

/// Tell the master why this worker cannot run, and the exit code to end with.
fn fail(worker_id: usize, reason: String, ctl: &mut control::Control) -> i32 {
    crate::error!("worker {worker_id} failed to start: {reason}");
    ctl.send_blocking(&WorkerMsg::Failed { reason });
    1
}

impl Worker {
    fn new(
        cfg: Config,
        app: Box<dyn App>,
        worker_id: usize,
        inc: u64,
        mut ctl: control::Control,
        inherited: Vec<(String, std::net::TcpListener)>,
    ) -> Result<Worker, Box<(String, control::Control)>> {
        let heartbeat = heartbeat::Heartbeat::from_config(&cfg.gateway);
        let limits = effective_limits(&cfg.limits, &app.transport());
        let max_body = cfg
            .limits
            .max_package_size
            .min(app.transport().max_http_body);
        let peers = peers::PeerCounts::new(
            cfg.limits.max_connections_per_ip,
            cfg.workers,
            &cfg.limits.proxies,
        );
        let (poll, listeners, waker) = match Self::setup(&cfg, &mut ctl, inherited) {
            Ok(parts) => parts,
            Err(reason) => return Err(Box::new((reason, ctl))),
        };
        let settings = InputSettings {
            allowed_origins: cfg.websocket.allowed_origins.clone(),
            subprotocols: cfg.websocket.subprotocols.clone(),
            request_limits: RequestLimits {
                max_header_size: cfg.limits.max_header_size,
                max_body_size: max_body,
            },
            max_message: limits.max_package_size,
            api_key: cfg.gateway.secret_key.clone(),
            api_ids: crate::api::http_api::Ids {
                gw: gw_ids(&cfg.gatewayworker),
            },
        };
        let mut core = Core::new(worker_id, inc, limits, &cfg.websocket, waker);
        if let Some(c) = &cfg.cluster {
            let window = Duration::from_micros(c.publish_window_us);
            core.bus.hold_other_nodes(c.node, window);
        }
        match poll.registry().try_clone() {
            Ok(r) => core.registry = Some(r),
            Err(e) => return Err(Box::new((format!("epoll: {e}"), ctl))),
        }
        Ok(Worker {
            base: Base {
                poll,
                core,
                app,
                scratch: vec![0; SCRATCH],
                tls_scratch: crate::tls::session::Scratch::new(),
                peers,
                buffered_input: 0,
                quiet: quiet::Quiet::default(),
            },
            app_name: cfg.app.clone(),
            cfg,
            stopping: Stopping::No,
            listeners,
            reader: read::Reader::new(settings),
            links: bus_io::Links::default(),
            control: ctl,
            heartbeat,
            handing: None,
            handover_started: None,
            incoming: None,
        })
    }

    #[allow(clippy::type_complexity)]
    fn setup(
        cfg: &Config,
        ctl: &mut control::Control,
        inherited: Vec<(String, std::net::TcpListener)>,
    ) -> Result<(Poll, accept::Listeners, std::sync::Arc<mio::Waker>), String> {
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let listeners = accept::Listeners::open(cfg, poll.registry(), inherited)?;
        ctl.register(poll.registry(), CONTROL)
            .map_err(|e| format!("register control: {e}"))?;
        let waker = mio::Waker::new(poll.registry(), WAKE).map_err(|e| format!("waker: {e}"))?;
        Ok((poll, listeners, std::sync::Arc::new(waker)))
    }

    fn run(&mut self) -> i32 {
        let mut events = Events::with_capacity(1024);
        let b = &mut self.base;
        b.core.now = Instant::now();
        if let Some(hb) = &self.heartbeat {
            let at = b.core.now + hb.period();
            b.core.timers.schedule(at, Due::Heartbeat);
        }
        let started = guarded(&mut b.core, None, "on_worker_start", |cx| {
            b.app.on_worker_start(cx)
        });
        let reason = match started {
            Some(Ok(())) => None,
            Some(Err(e)) => Some(format!("app {}: {e}", self.app_name)),
            None => Some(format!("app {} panicked in on_worker_start", self.app_name)),
        };
        if let Some(reason) = reason {
            return fail(b.core.worker_id, reason, &mut self.control);
        }
        // A successor says which records it reads before it is Ready: its predecessor looks
        // for that as soon as the master tells it to hand over, which is on this Ready.
        let mut unusable = None;
        let incoming = self.incoming.take().filter(|h| match handover::greet(h) {
            Ok(()) => true,
            Err(e) => {
                unusable = Some(format!("hand-over socket unusable: {e}"));
                false
            }
        });
        self.control.send(&WorkerMsg::Ready {
            pid: std::process::id(),
            listeners: self.listeners.urls(),
        });
        if let Some(h) = incoming {
            self.adopt(h);
        } else if let Some(reason) = unusable {
            crate::warn!("worker {}: {reason}", self.base.core.worker_id);
            self.control.send(&WorkerMsg::HandOverFailed { reason });
        }
        loop {
            let busy = self.reader.has_pending()
                || self.links.has_pending()
                || self.listeners.has_pending()
                || self.handing.as_ref().is_some_and(|h| h.busy());
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.base
                    .core
                    .timers
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.base.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                crate::error!("poll failed: {e}");
                return 1;
            }
            self.base.core.now = Instant::now();
            self.links.events(&mut self.base, &events);
            for ev in events.iter() {
                let b = &mut self.base;
                match ev.token() {
                    WAKE => {
                        guarded(&mut b.core, None, "on_wake", |cx| b.app.on_wake(cx));
                    }
                    CONTROL => {
                        if !self.on_control(ev.is_readable() || ev.is_read_closed()) {
                            return 0;
                        }
                    }
                    HANDOVER => {
                        if let Some(h) = &mut self.handing {
                            let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                            h.on_event(readable, ev.is_writable());
                        }
                    }
                    Token(t) if t >= LISTENER_BASE => {
                        self.listeners.accept(b, t - LISTENER_BASE);
                    }
                    // Handled by `Links::events` above.
                    Token(t) if t >= BUS_BASE => {}
                    Token(t) if t >= APP_IO_BASE => {
                        let ready = IoReady {
                            readable: ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                            writable: ev.is_writable(),
                        };
                        let n = t - APP_IO_BASE;
                        guarded(&mut b.core, None, "on_io", |cx| b.app.on_io(cx, n, ready));
                    }
                    Token(slot) => self.reader.event(b, slot, ev),
                }
                close::apply(&mut self.base);
            }
            self.continue_pending();
            self.fire_timers();
            self.flush_dirty();
            close::apply(&mut self.base);
            if self.handover_tick() {
                // A hand-over that failed closes the clients with 1012: those close frames go
                // out now, not at the next event (there may be none before the linger ends).
                self.flush_dirty();
                close::apply(&mut self.base);
            }
            self.base.core.seal_fanout();
            if self.stopping != Stopping::No && self.base.core.conns.is_empty() {
                // Nothing held for the publish window may stay behind.
                self.base.core.bus.release_held();
                self.links.flush(&mut self.base);
                crate::info!("worker {} stopped", self.base.core.worker_id);
                return 0;
            }
        }
    }

    /// Work left over from budgets in the previous turn.
    fn continue_pending(&mut self) {
        self.listeners.continue_pending(&mut self.base);
        self.links.continue_pending(&mut self.base);
        self.reader.continue_pending(&mut self.base);
    }

    /// Write every connection's queued output once.
    fn flush_dirty(&mut self) {
        let b = &mut self.base;
        guarded(&mut b.core, None, "on_turn_end", |cx| b.app.on_turn_end(cx));
        // Bus links first: a client that got our answer and then asks another worker must
        // find that worker already holding the changes made before the answer.
        self.links.flush(&mut self.base);
        flush::conns(
            &mut self.base.core,
            &mut self.reader,
            &mut self.base.tls_scratch,
        );
    }

    fn fire_timers(&mut self) {
        let now = self.base.core.now;
        // Bound the work per turn; the rest fires next turn (poll timeout is then zero).
        for _ in 0..4096 {
            let b = &mut self.base;
            let Some((due, tag)) = b.core.timers.pop_due(now) else {
                return;
            };
            match due {
                Due::App(t) => {
                    guarded(&mut b.core, None, "on_timer", |cx| {
                        b.app.on_timer(cx, TimerId(t), tag)
                    });
                }
                Due::Conn(slot, gen) => deadline::conn(&mut b.core, slot as usize, gen),
                Due::ResumeAccept => self.listeners.resume(b, self.stopping == Stopping::No),
                Due::DrainDeadline => self.close_all(),
                Due::HandOver => {
                    self.handover_tick();
                }
                // The held deliveries go out in this turn's flush.
                Due::BusHold => {}
                Due::Heartbeat => {
                    if let Some(hb) = &mut self.heartbeat {
                        hb.tick(&mut b.core);
                        let at = now + hb.period();
                        b.core.timers.schedule(at, Due::Heartbeat);
                    }
                }
            }
            close::apply(&mut self.base);
        }
    }

    /// Close every connection (stop or drain deadline).
    fn close_all(&mut self) {
        self.stopping = Stopping::Closing;
        close::all(&mut self.base);
    }

    /// Handle control-socket readiness; returns false when the master is gone (exit now).
    fn on_control(&mut self, readable: bool) -> bool {
        if !self.control.receive(readable) {
            return false;
        }
        loop {
            match self.control.next_msg() {
                Ok(Some(m)) => self.on_master_msg(m),
                Ok(None) => return true,
                Err(e) => {
                    crate::error!("control channel: {e}");
                    return false;
                }
            }
        }
    }

    fn on_master_msg(&mut self, m: MasterMsg) {
        let b = &mut self.base;
        match m {
            MasterMsg::Stop { graceful, restart } => self.stop(graceful, restart),
            MasterMsg::Status { req } => {
                let draining = self.stopping != Stopping::No;
                let status = control::status(&b.core, &self.cfg, &self.app_name, draining);
                self.control.send(&WorkerMsg::Status { req, status });
            }
            MasterMsg::Connections { req } => {
                let conns = control::connection_rows(&b.core);
                self.control.send(&WorkerMsg::Connections { req, conns });
            }
            MasterMsg::Admin { event } => {
                guarded(&mut b.core, None, "on_admin", |cx| {
                    b.app.on_admin(cx, &event)
                });
            }
            MasterMsg::HandOver => match self.control.take_fd() {
                Some(fd) => self.begin_handover(fd),
                None => {
                    crate::error!("hand-over order came without a socket; stopping with 1012");
                    self.stop(false, true);
                }
            },
            MasterMsg::Peer { inc, worker_id } => match self.control.take_fd() {
                Some(fd) => self.links.add_peer(b, inc, worker_id, fd),
                None => crate::error!("peer message for worker {worker_id} came without a socket"),
            },
        }
    }

    fn stop(&mut self, graceful: bool, restart: bool) {
        if self.stopping != Stopping::No && graceful {
            return;
        }
        let code = if restart {
            ws_close::SERVICE_RESTART
        } else {
            ws_close::GOING_AWAY
        };
        let b = &mut self.base;
        crate::info!(
            "worker {} stopping ({}{})",
            b.core.worker_id,
            if graceful { "graceful" } else { "fast" },
            if restart { ", reload" } else { "" }
        );
        self.listeners.close(b.poll.registry());
        // A hand-over not made yet is off: the successor sees its socket close, starts fresh.
        if self.handing.take().is_some() {
            b.core.reg.take_changes();
        }
        // From now on an HTTP answer closes its connection instead of keeping it alive.
        b.core.stopping = Some(code);
        close::idle_http(b);
        if self.stopping == Stopping::No {
            guarded(&mut b.core, None, "on_worker_stop", |cx| {
                b.app.on_worker_stop(cx)
            });
        }
        if graceful {
            self.stopping = Stopping::Draining;
            let t = self.cfg.graceful_timeout;
            if !t.is_zero() {
                b.core.timers.schedule(b.core.now + t, Due::DrainDeadline);
            }
        } else {
            self.close_all();
        }
    }

    /// `MasterMsg::HandOver`: stop accepting and open the hand-over; the copy of the
    /// connections runs a batch per turn and the commit once the app has settled (see
    /// [`Self::handover_tick`]).
    fn begin_handover(&mut self, fd: std::os::fd::OwnedFd) {
        let b = &mut self.base;
        if self.stopping != Stopping::No || self.handing.is_some() {
            crate::warn!(
                "worker {}: hand-over asked while already stopping; ignored",
                b.core.worker_id
            );
            return;
        }
        crate::info!(
            "worker {} handing its connections over to its successor",
            b.core.worker_id
        );
        self.listeners.close(b.poll.registry());
        self.handover_started = Some((Instant::now(), crate::sys::process::thread_sched_times()));
        let sock = std::os::unix::net::UnixStream::from(fd);
        match handover::Outgoing::start(b, sock, HANDOVER) {
            Ok(h) => self.handing = Some(h),
            Err(e) => {
                b.core.reg.take_changes();
                crate::warn!(
                    "worker {}: no hand-over ({e}); closing its connections with 1012 instead",
                    b.core.worker_id
                );
                self.stop(false, true);
            }
        }
    }

    /// End of a turn (or a hand-over deadline): copy the next batch; once all is copied and
    /// the successor has caught up, hold the clients' reads and, when the app has settled (or
    /// at the settle deadline), commit. True if the hand-over ended (done, or failed and
    /// closing with 1012).
    fn handover_tick(&mut self) -> bool {
        let Some(h) = &mut self.handing else {
            return false;
        };
        let now = self.base.core.now;
        match h.advance(&self.base, now) {
            Ok(handover::Next::Wait) => {}
            Ok(handover::Next::Synced(until)) => {
                let (conns, clients) = h.copied_ahead();
                crate::info!(
                    "worker {} copied {conns} connections and {clients} registry clients ahead; serving on until its successor has read them",
                    self.base.core.worker_id
                );
                self.base.core.timers.schedule(until, Due::HandOver);
            }
            Ok(handover::Next::Settle(until)) => {
                // From here on the clients wait (their bytes stay in the kernel) while the app
                // settles and the commit goes out.
                self.reader.hold();
                self.base.core.timers.schedule(until, Due::HandOver);
            }
            Err(e) => {
                self.handover_failed(e);
                return true;
            }
        }
        let Some(until) = self.handing.as_ref().and_then(|h| h.settle_deadline()) else {
            return false;
        };
        if !(now >= until || self.base.app.settled()) {
            return false;
        }
        let Some(h) = self.handing.take() else {
            return false;
        };
        let started = Instant::now();
        let (began, sched) = self.handover_started.take().unwrap_or((started, None));
        // Established TLS sessions switch to our record layer so their keys can move (they
        // were not copied ahead: the keys leave rustls once, here); a connection that still
        // cannot move (a TLS handshake under way) is closed first, so its departure goes out
        // on the bus links before they move.
        tls::detach_all(&mut self.base);
        close::unmovable(&mut self.base);
        match h.commit(&mut self.base) {
            Ok(done) => {
                handover::forget_moved(&mut self.base, &done.conns, &done.links);
                let b = &mut self.base;
                crate::info!(
                    "worker {} handed {} connections and {} bus links over in {} ms{}, clients held for the last {} ms ({} registry clients sent again)",
                    b.core.worker_id,
                    done.conns.len(),
                    done.links.len(),
                    began.elapsed().as_millis(),
                    sched_since(sched),
                    started.elapsed().as_millis(),
                    done.clients_resent,
                );
                // What is left is an HTTP answer the app still owes: written, then the
                // connection closes; the worker exits when none is left (or at stop_timeout).
                b.core.stopping = Some(ws_close::SERVICE_RESTART);
                self.stopping = Stopping::Draining;
                guarded(&mut b.core, None, "on_worker_stop", |cx| {
                    b.app.on_worker_stop(cx)
                });
                let t = self.cfg.stop_timeout;
                b.core.timers.schedule(b.core.now + t, Due::DrainDeadline);
            }
            Err(e) => self.handover_failed(e),
        }
        true
    }

    /// The hand-over failed: the clients get 1012, as on a restart.
    fn handover_failed(&mut self, e: handover::HandOverError) {
        self.handing = None;
        self.base.core.reg.take_changes();
        crate::warn!(
            "worker {}: no hand-over ({e}); closing its connections with 1012 instead",
            self.base.core.worker_id
        );
        self.stop(false, true);
    }

    /// Successor, after Ready and before its loop: take the predecessor's clients over, or
    /// start fresh; tells the master which.
    fn adopt(&mut self, sock: std::os::unix::net::UnixStream) {
        let started = Instant::now();
        let sched = crate::sys::process::thread_sched_times();
        let max_message = self.base.core.limits.max_package_size;
        let got = adopt::receive(&sock, self.base.poll.registry(), max_message);
        drop(sock);
        match got {
            Ok(r) => {
                let inc = r.inc;
                let installing = Instant::now();
                let n = adopt::install(&mut self.base, &mut self.reader, &mut self.links, r);
                crate::info!(
                    "worker {} took over {n} connections as incarnation {inc:016x} in {} ms{}, installed in the last {} ms",
                    self.base.core.worker_id,
                    started.elapsed().as_millis(),
                    sched_since(sched),
                    installing.elapsed().as_millis()
                );
                self.control.send(&WorkerMsg::Adopted { inc, conns: n });
            }
            Err(e) => {
                crate::warn!(
                    "worker {}: no hand-over ({e}); starting as a fresh worker",
                    self.base.core.worker_id
                );
                self.control.send(&WorkerMsg::HandOverFailed {
                    reason: e.to_string(),
                });
            }
        }
    }
}

/// The node's GatewayWorker client id layout when the inner ports are on (a bad `lan_ip` is
/// refused when the app starts them).
fn gw_ids(g: &crate::config::GatewayWorkerConfig) -> Option<crate::gateway::gw_id::GwIds> {
    let ip: std::net::Ipv4Addr = g.lan_ip.parse().ok()?;
    g.enabled().then_some(crate::gateway::gw_id::GwIds {
        lan_ip: u32::from(ip),
        start_port: g.start_port,
    })
}
