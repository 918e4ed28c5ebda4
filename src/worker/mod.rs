//! One worker process: a single mio loop over its listeners, its connections (a slab) and
//! the control channel to the master.
//!
//! Loop discipline: every event may be spurious; reads go until WouldBlock or a per-event
//! budget (the rest is picked up next turn, since epoll is edge-triggered); output queued
//! during a turn is written once at the end of the turn; timers fire between turns. No
//! blocking call and no unbounded work happens per event.

mod accept;
mod bus_io;
mod close;
mod control;
mod heartbeat;
mod input;
mod peers;

use crate::api::{App, TimerId};
use crate::config::{Config, ListenSpec};
use crate::connection::buffer::Flush;
use crate::connection::{Conn, ConnState, Framing, Input, Proto};
use crate::gateway::client_id::ConnId;
use crate::ipc::WorkerMsg;
use crate::protocol::http::request::RequestLimits;
use crate::protocol::websocket::{close as ws_close, frame as ws_frame};
use crate::state::timer::Due;
use crate::state::{CloseHow, Core};
use input::{guarded, InputSettings};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Token of the master control channel.
const CONTROL: Token = Token(usize::MAX - 1);
/// Token of the waker app threads use.
const WAKE: Token = Token(usize::MAX - 2);
/// Listener `i` has token `LISTENER_BASE + i`; connection tokens are slab slots, far below.
const LISTENER_BASE: usize = usize::MAX - 1024;
/// Bus link `i` has token `BUS_BASE + i` (below the listeners).
const BUS_BASE: usize = usize::MAX - (1 << 20);
/// Shared read buffer: one per worker instead of one per connection.
const SCRATCH: usize = 64 * 1024;
/// Bytes read from one connection per event before giving others a turn.
const READ_BUDGET: usize = 256 * 1024;
/// Connections accepted per listener per event before giving others a turn.
const ACCEPT_BUDGET: usize = 256;
/// How long a closing connection may take to read our close and hang up.
const LINGER: Duration = Duration::from_secs(2);
/// How long a stopping worker waits for the request of a connection it accepted just before.
const REQUEST_GRACE: Duration = Duration::from_millis(500);
/// Pause after EMFILE/ENFILE before accepting again (the classic busy-loop trap otherwise).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How the worker is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopping {
    /// Not stopping.
    No,
    /// Listeners closed; waiting for connections to end by themselves.
    Draining,
    /// Connections are being closed.
    Closing,
}

struct Listener {
    sock: TcpListener,
    spec: ListenSpec,
    /// Accept budget ran out with connections possibly still queued.
    pending: bool,
}

/// The worker state outside the core (what apps do not see).
struct Worker {
    poll: Poll,
    core: Core,
    app: Box<dyn App>,
    app_name: String,
    listeners: Vec<Listener>,
    accept_paused: bool,
    control: control::Control,
    scratch: Vec<u8>,
    input: InputSettings,
    cfg: Config,
    stopping: Stopping,
    /// Connections with unread input left over from an exhausted read budget.
    reread: Vec<ConnId>,
    /// Bus links likewise.
    reread_links: Vec<usize>,
    /// Gateway heartbeats (None: `ping_interval` is 0).
    heartbeat: Option<heartbeat::Heartbeat>,
    /// Connections per peer address, against `limits.max_connections_per_ip`.
    peers: peers::PeerCounts,
    /// Capacity of every connection's `in_buf` together, against `limits.max_buffered_input`.
    buffered_input: usize,
    /// Warnings that a flood could repeat (EMFILE, caps) are logged at most once per period.
    quiet: Quiet,
}

/// Rate limit for warnings a peer can trigger at will: one line per [`QUIET_PERIOD`], with the
/// number of repeats left out, so a flood cannot fill the disk with log lines.
#[derive(Debug, Default)]
struct Quiet {
    last: Option<Instant>,
    suppressed: u64,
}

/// Shortest time between two warnings of a kind a flood repeats.
const QUIET_PERIOD: Duration = Duration::from_secs(10);

impl Quiet {
    /// Whether to log now; `Some(n)` with the number of warnings left out since the last one.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < QUIET_PERIOD => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Run a worker with `app` until it is told to stop; returns the process exit code. `control`
/// is the socket to the master (or to a test standing in for it); `inherited` are the
/// listening sockets the master keeps for this worker's slot, by listen URL (a listener of the
/// config without one is bound here).
pub fn run(
    cfg: Config,
    app: Box<dyn App>,
    worker_id: usize,
    inc: u64,
    control: std::os::unix::net::UnixStream,
    inherited: Vec<(String, std::net::TcpListener)>,
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
        Ok(mut w) => w.run(),
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
        match Self::setup(&cfg, &mut ctl, inherited) {
            Ok((poll, listeners, waker)) => Ok(Worker {
                poll,
                input: InputSettings {
                    allowed_origins: cfg.websocket.allowed_origins.clone(),
                    subprotocols: cfg.websocket.subprotocols.clone(),
                    request_limits: RequestLimits {
                        max_header_size: cfg.limits.max_header_size,
                        max_body_size: max_body,
                    },
                    max_message: limits.max_package_size,
                    api_key: cfg.gateway.secret_key.clone(),
                },
                core: Core::new(worker_id, inc, limits, waker),
                app,
                app_name: cfg.app.clone(),
                listeners,
                accept_paused: false,
                control: ctl,
                scratch: vec![0; SCRATCH],
                cfg,
                stopping: Stopping::No,
                reread: Vec::new(),
                reread_links: Vec::new(),
                heartbeat,
                peers,
                buffered_input: 0,
                quiet: Quiet::default(),
            }),
            Err(reason) => Err(Box::new((reason, ctl))),
        }
    }

    #[allow(clippy::type_complexity)]
    fn setup(
        cfg: &Config,
        ctl: &mut control::Control,
        mut inherited: Vec<(String, std::net::TcpListener)>,
    ) -> Result<(Poll, Vec<Listener>, std::sync::Arc<mio::Waker>), String> {
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let mut listeners = Vec::new();
        for (i, spec) in cfg.listen.iter().enumerate() {
            let url = spec.to_string();
            let std_l = match inherited.iter().position(|(s, _)| *s == url) {
                Some(at) => inherited.swap_remove(at).1,
                // A listener the master does not hold (added to the config for this reload,
                // or a worker run without a master): this worker's own, with SO_REUSEPORT.
                None => crate::sys::socket::bind_listener(spec.addr, true)
                    .map_err(|e| format!("cannot listen on {spec}: {e}"))?,
            };
            let mut sock = TcpListener::from_std(std_l);
            poll.registry()
                .register(&mut sock, Token(LISTENER_BASE + i), Interest::READABLE)
                .map_err(|e| format!("register {spec}: {e}"))?;
            listeners.push(Listener {
                sock,
                spec: spec.clone(),
                pending: false,
            });
        }
        ctl.register(poll.registry(), CONTROL)
            .map_err(|e| format!("register control: {e}"))?;
        let waker = mio::Waker::new(poll.registry(), WAKE).map_err(|e| format!("waker: {e}"))?;
        Ok((poll, listeners, std::sync::Arc::new(waker)))
    }

    fn run(&mut self) -> i32 {
        let mut events = Events::with_capacity(1024);
        self.core.now = Instant::now();
        if let Some(hb) = &self.heartbeat {
            let at = self.core.now + hb.period();
            self.core.timers.schedule(at, Due::Heartbeat);
        }
        let started = guarded(&mut self.core, None, "on_worker_start", |cx| {
            self.app.on_worker_start(cx)
        });
        let reason = match started {
            Some(Ok(())) => None,
            Some(Err(e)) => Some(format!("app {}: {e}", self.app_name)),
            None => Some(format!("app {} panicked in on_worker_start", self.app_name)),
        };
        if let Some(reason) = reason {
            return fail(self.core.worker_id, reason, &mut self.control);
        }
        let listeners = self.listeners.iter().map(|l| l.spec.to_string()).collect();
        self.control.send(&WorkerMsg::Ready {
            pid: std::process::id(),
            listeners,
        });
        loop {
            let busy = !self.reread.is_empty()
                || !self.reread_links.is_empty()
                || self
                    .listeners
                    .iter()
                    .any(|l| l.pending && !self.accept_paused);
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.core
                    .timers
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                crate::error!("poll failed: {e}");
                return 1;
            }
            self.core.now = Instant::now();
            self.bus_events(&events);
            for ev in events.iter() {
                match ev.token() {
                    WAKE => {
                        guarded(&mut self.core, None, "on_wake", |cx| self.app.on_wake(cx));
                    }
                    CONTROL => {
                        if !self.on_control(ev.is_readable() || ev.is_read_closed()) {
                            return 0;
                        }
                    }
                    Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE),
                    // Handled by `bus_events` above.
                    Token(t) if t >= BUS_BASE => {}
                    Token(slot) => self.conn_event(slot, ev),
                }
                self.apply_closes();
            }
            self.continue_pending();
            self.fire_timers();
            self.flush_dirty();
            self.apply_closes();
            self.core.seal_fanout();
            if self.stopping != Stopping::No && self.core.conns.is_empty() {
                crate::info!("worker {} stopped", self.core.worker_id);
                return 0;
            }
        }
    }

    /// Work left over from budgets in the previous turn.
    fn continue_pending(&mut self) {
        for i in 0..self.listeners.len() {
            if self.listeners[i].pending && !self.accept_paused {
                self.accept(i);
            }
        }
        for slot in std::mem::take(&mut self.reread_links) {
            self.link_readable(slot);
        }
        for id in std::mem::take(&mut self.reread) {
            if self.core.get(id).is_some() {
                self.read(id.index());
                self.apply_closes();
            }
        }
    }

    fn conn_event(&mut self, slot: usize, ev: &mio::event::Event) {
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.read(slot);
        }
        if ev.is_writable() {
            if let Some(c) = self.core.conns.get_mut(slot) {
                if !c.out.is_empty() && !c.in_dirty {
                    c.in_dirty = true;
                    self.core.dirty.push(slot);
                }
            }
        }
    }

    /// Read from `slot` until WouldBlock, EOF or the budget; hand the bytes to the decoders.
    fn read(&mut self, slot: usize) {
        let mut total = 0;
        loop {
            let Some(c) = self.core.conns.get_mut(slot) else {
                return;
            };
            let id = ConnId {
                slot: slot as u32,
                gen: c.gen,
            };
            match c.input {
                Input::Flowing => {}
                Input::Paused | Input::AwaitingApp => return,
                Input::Resumed => {
                    // Requests held back while paused come before anything new on the socket.
                    c.input = Input::Flowing;
                    self.feed(id, 0);
                    match self.core.get(id) {
                        Some(c) if c.input == Input::Flowing => continue,
                        _ => return,
                    }
                }
            }
            let n = match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    self.core.request_close(id, CloseHow::Now);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.core.request_close(id, CloseHow::Now);
                    return;
                }
            };
            c.bytes_read += n as u64;
            c.last_active = self.core.now;
            total += n;
            if matches!(c.state, ConnState::Open | ConnState::Handshake) {
                self.feed(id, n);
            }
            if n < self.scratch.len() {
                // A short read drained the socket; new bytes will raise a new edge.
                return;
            }
            if total >= READ_BUDGET {
                self.reread.push(id);
                return;
            }
        }
    }

    /// Decode `n` fresh bytes (in the scratch buffer) for `id`.
    fn feed(&mut self, id: ConnId, n: usize) {
        let Some(c) = self.core.get_mut(id) else {
            return;
        };
        let mut proto = std::mem::replace(&mut c.proto, Proto::Http);
        let mut held = std::mem::take(&mut c.in_buf);
        let before = held.capacity();
        let fresh = &mut self.scratch[..n];
        if held.is_empty() {
            let used = input::process(
                &mut self.core,
                self.app.as_mut(),
                &self.input,
                id,
                &mut proto,
                fresh,
            );
            if used < n {
                held.extend_from_slice(&fresh[used..]);
            }
        } else {
            held.extend_from_slice(fresh);
            let used = input::process(
                &mut self.core,
                self.app.as_mut(),
                &self.input,
                id,
                &mut proto,
                &mut held,
            );
            held.drain(..used);
        }
        let Some(c) = self.core.get_mut(id) else {
            // Closed while its bytes were handled: `drop_conn` took off what it held before.
            self.buffered_input = self.buffered_input.saturating_sub(before);
            return;
        };
        c.proto = proto;
        if held.capacity() > SCRATCH && held.len() < SCRATCH / 4 {
            held.shrink_to(SCRATCH / 4);
        }
        let after = held.capacity();
        c.in_buf = held;
        self.buffered_input = self.buffered_input.saturating_sub(before) + after;
        if after > before && self.buffered_input > self.core.limits.max_buffered_input {
            // The worker holds as much undecoded input as it may: the connection asking for
            // more goes, not the ones already waiting for their next bytes.
            if let Some(skipped) = self.quiet.allow(self.core.now) {
                crate::warn!(
                    "worker {}: limits.max_buffered_input reached; closing the connection that \
                     grows ({skipped} more since the last warning)",
                    self.core.worker_id
                );
            }
            self.core.request_close(id, CloseHow::Now);
        }
    }

    /// Write every connection's queued output once.
    fn flush_dirty(&mut self) {
        // Bus links first: a client that got our answer and then asks another worker must
        // find that worker already holding the changes made before the answer.
        for slot in self.core.bus.flush() {
            self.drop_link(slot, "backed up or broken");
        }
        let high = self.core.limits.max_send_buffer / 2;
        let low = self.core.limits.max_send_buffer / 8;
        let dirty = std::mem::take(&mut self.core.dirty);
        for &slot in &dirty {
            let Some(c) = self.core.conns.get_mut(slot) else {
                continue;
            };
            c.in_dirty = false;
            let id = ConnId {
                slot: slot as u32,
                gen: c.gen,
            };
            match c.out.flush_to(&mut c.stream, &self.core.fanout) {
                Ok((n, Flush::Done)) => {
                    c.bytes_written += n as u64;
                    if c.input.resume() {
                        self.reread.push(id);
                    }
                    if c.state == ConnState::Closing {
                        let _ = c.stream.shutdown(std::net::Shutdown::Write);
                        c.state = ConnState::Lingering;
                    }
                }
                Ok((n, Flush::Blocked)) => {
                    c.bytes_written += n as u64;
                    if c.out.holds_turn() {
                        self.core.held_turn.push(slot);
                    }
                    if c.out.len() > high {
                        // Back-pressure: stop reading from a client that does not read its answers.
                        c.input.pause();
                    } else if c.out.len() < low && c.input.resume() {
                        self.reread.push(id);
                    }
                }
                Err(_) => {
                    self.core.stats.send_fail += 1;
                    self.core.request_close(id, CloseHow::Now);
                }
            }
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.core.dirty.is_empty() {
            // Reuse the allocation for the next turn.
            self.core.dirty = dirty;
        }
    }

    fn fire_timers(&mut self) {
        let now = self.core.now;
        // Bound the work per turn; the rest fires next turn (poll timeout is then zero).
        for _ in 0..4096 {
            let Some((due, tag)) = self.core.timers.pop_due(now) else {
                return;
            };
            match due {
                Due::App(t) => {
                    guarded(&mut self.core, None, "on_timer", |cx| {
                        self.app.on_timer(cx, TimerId(t), tag)
                    });
                }
                Due::Conn(slot, gen) => self.conn_deadline(slot as usize, gen),
                Due::ResumeAccept => {
                    self.accept_paused = false;
                    if self.stopping == Stopping::No {
                        for i in 0..self.listeners.len() {
                            self.accept(i);
                        }
                    }
                }
                Due::DrainDeadline => self.close_all(),
                Due::Heartbeat => {
                    if let Some(hb) = &mut self.heartbeat {
                        hb.tick(&mut self.core);
                        let at = now + hb.period();
                        self.core.timers.schedule(at, Due::Heartbeat);
                    }
                }
            }
            self.apply_closes();
        }
    }

    fn conn_deadline(&mut self, slot: usize, gen: u32) {
        let now = self.core.now;
        let idle = self.core.limits.idle_timeout;
        let Some(c) = self.core.conns.get_mut(slot).filter(|c| c.gen == gen) else {
            return;
        };
        match c.timer_at {
            // An earlier check was superseded by a later one... or this is the stale later one.
            Some(t) if t > now => return,
            _ => c.timer_at = None,
        }
        let id = ConnId {
            slot: slot as u32,
            gen,
        };
        match c.state {
            ConnState::Handshake | ConnState::Closing | ConnState::Lingering => match c.deadline {
                Some(d) if d <= now => self.core.request_close(id, CloseHow::Now),
                Some(d) => self.core.arm_conn_timer(slot, d),
                None => {}
            },
            ConnState::Open => {
                // The login deadline (until the app authenticates the client), then the idle
                // one; the earlier pending one is armed next.
                let mut next = None;
                if let Some(d) = c.deadline {
                    if d <= now {
                        // Not logged: a flood of such clients would flood the log too.
                        self.core
                            .request_close(id, CloseHow::Graceful(ws_close::POLICY));
                        return;
                    }
                    next = Some(d);
                }
                if !idle.is_zero() {
                    let due = c.last_active + idle;
                    if due <= now {
                        self.core
                            .request_close(id, CloseHow::Graceful(ws_close::GOING_AWAY));
                        return;
                    }
                    next = Some(next.map_or(due, |n: Instant| n.min(due)));
                }
                if let Some(at) = next {
                    self.core.arm_conn_timer(slot, at);
                }
            }
        }
    }

    /// Close every connection (stop or drain deadline).
    fn close_all(&mut self) {
        self.stopping = Stopping::Closing;
        // Set by the stop order (a drain deadline comes after one).
        let code = self.core.stopping.unwrap_or(ws_close::GOING_AWAY);
        let ids: Vec<ConnId> = self
            .core
            .conns
            .iter()
            .map(|(s, c)| ConnId {
                slot: s as u32,
                gen: c.gen,
            })
            .collect();
        let grace = self.core.now + REQUEST_GRACE;
        for id in ids {
            let Some(c) = self.core.get_mut(id) else {
                continue;
            };
            if c.idle_http() {
                self.core.request_close(id, CloseHow::Now);
            } else if c.state == ConnState::Handshake {
                // Accepted, its request not answered yet: a client that connected before the
                // stop gets an answer (an HTTP response with `Connection: close`, or its
                // upgrade and then the close code), not a reset. A client that sends nothing
                // is dropped soon, so it cannot hold the stop up.
                let by = c.deadline.map_or(grace, |d| d.min(grace));
                c.deadline = Some(by);
                self.core.arm_conn_timer(id.index(), by);
            } else {
                self.core.request_close(id, CloseHow::Graceful(code));
            }
        }
        self.apply_closes();
    }

    /// Close the HTTP connections waiting for a next request that may never come (a
    /// browser's keep-alive): a draining worker would otherwise wait on them until its
    /// deadline, and a stopping one linger on them.
    fn close_idle_http(&mut self) {
        let idle: Vec<ConnId> = self
            .core
            .conns
            .iter()
            .filter(|(_, c)| c.idle_http())
            .map(|(s, c)| ConnId {
                slot: s as u32,
                gen: c.gen,
            })
            .collect();
        for id in idle {
            self.core.request_close(id, CloseHow::Now);
        }
        self.apply_closes();
    }

    /// Stop accepting: deregister and close every listener.
    fn close_listeners(&mut self) {
        for mut l in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut l.sock);
        }
    }
}
