//! The inner-port thread of one worker: its own mio loop over the inner listener
//! (BusinessWorkers and GatewayClients), the links to the Register(s), and, in the worker that
//! hosts it, the Register itself.
//!
//! It never touches client state: commands become [`Op`]s for the worker loop (woken with its
//! waker), and client events and query answers come back as [`Event`]s. Every peer is
//! hostile until it proves the secret: frames and lines are bounded before anything is
//! buffered, and a bad one closes that peer only.

use super::commands::op_of;
use super::msg::{ConnNo, Event, LinkKey, Op};
use crate::protocol::gateway::frame::{self, Cmd, Header, FLAG_BODY_IS_SCALAR};
use crate::protocol::gateway::register::{self, RegisterMsg};
use crate::protocol::text::LineCodec;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INNER: Token = Token(usize::MAX - 1);
const WAKE: Token = Token(usize::MAX - 2);
const REGISTER: Token = Token(usize::MAX - 3);
/// Largest Register line we read as a gateway (a broadcast of many addresses fits easily).
const MAX_LINE: usize = 64 * 1024;
/// Largest line a Register peer may send us (`gateway_connect` with a 262-byte address).
const MAX_PEER_LINE: usize = 1024;
/// Largest frame before the secret is shown (the hello frames are a few dozen bytes), so a
/// stranger cannot make this thread buffer `max_frame` bytes per connection.
const MAX_HELLO_FRAME: usize = 4096;
/// A Register peer must say who it is within this time (as GatewayWorker's Register).
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive to a Register that is not on this host (GatewayWorker's 25 s).
const REGISTER_PING: Duration = Duration::from_secs(25);
/// Most inner and Register peers at once (with `max_frame` of input each at worst, once
/// authorized).
const MAX_PEERS: usize = 1024;

/// What the thread needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `lan_ip:port` announced to the Register.
    pub(crate) address: String,
    /// The lan IP as GatewayWorker's `ip2long`.
    pub(crate) lan_ip: u32,
    /// The inner port.
    pub(crate) port: u16,
    /// Registers to announce ourselves to.
    pub(crate) registers: Vec<SocketAddr>,
    /// Shared secret ("" = none).
    pub(crate) secret: String,
    /// Largest inner frame accepted.
    pub(crate) max_frame: usize,
    /// Most bytes queued for one peer before it is dropped as not reading.
    pub(crate) max_out: usize,
}

/// Handles the loop keeps of the thread.
#[derive(Debug)]
pub(crate) struct Handle {
    /// Events for the thread.
    pub(crate) tx: Sender<Event>,
    /// Wakes the thread.
    pub(crate) waker: Arc<Waker>,
    /// Set while the thread has been woken and has not drained yet (one wake per batch).
    pub(crate) woken: Arc<AtomicBool>,
}

enum Kind {
    /// Inner peer that has not shown the secret yet (or none is needed).
    Inner { authorized: bool },
    /// A BusinessWorker, by its key (`ip:name:index`).
    Business { key: String },
    /// The Register's peer that has not spoken yet.
    RegPeer,
    /// A gateway registered with our Register, with its address.
    RegGateway { address: String },
    /// A BusinessWorker or GatewayClient asking our Register for addresses.
    RegWorker,
    /// Our link to a Register.
    RegLink { at: usize, connected: bool },
}

struct Peer {
    stream: TcpStream,
    kind: Kind,
    gen: u64,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    lines: LineCodec,
    deadline: Option<Instant>,
    remote: SocketAddr,
}

struct Io {
    poll: Poll,
    inner: TcpListener,
    register: Option<TcpListener>,
    peers: slab::Slab<Peer>,
    next_gen: u64,
    set: Settings,
    ops: Sender<Op>,
    loop_waker: Arc<Waker>,
    events: Receiver<Event>,
    /// BusinessWorkers by key, with the number of clients routed to each.
    workers: Vec<(String, usize, u64)>,
    /// Which BusinessWorker each client is bound to.
    routes: HashMap<ConnNo, String>,
    /// When to reconnect each Register link.
    reconnect: Vec<Option<Instant>>,
    next_ping: Instant,
    scratch: Vec<u8>,
    /// Peers with output queued this turn.
    dirty: Vec<usize>,
    /// Set while the loop has been woken and has not yet drained the ops.
    loop_woken: Arc<AtomicBool>,
    /// Set while this thread has been woken and has not yet drained the events.
    woken: Arc<AtomicBool>,
}

/// The thread's ends of the channels with the loop.
#[derive(Debug)]
pub(crate) struct Wiring {
    /// Ops for the loop.
    pub(crate) ops: Sender<Op>,
    /// Wakes the loop.
    pub(crate) loop_waker: Arc<Waker>,
    /// Set while the loop has a wake pending.
    pub(crate) loop_woken: Arc<AtomicBool>,
    /// Events from the loop.
    pub(crate) events: Receiver<Event>,
    /// Set while this thread has a wake pending.
    pub(crate) woken: Arc<AtomicBool>,
}

/// Start the thread; `inner` (and `register`) are bound already.
pub(crate) fn start(
    set: Settings,
    inner: std::net::TcpListener,
    register: Option<std::net::TcpListener>,
    w: Wiring,
) -> io::Result<Arc<Waker>> {
    let Wiring {
        ops,
        loop_waker,
        loop_woken,
        events,
        woken,
    } = w;
    let poll = Poll::new()?;
    inner.set_nonblocking(true)?;
    let mut inner = TcpListener::from_std(inner);
    poll.registry()
        .register(&mut inner, INNER, Interest::READABLE)?;
    let register = match register {
        Some(r) => {
            r.set_nonblocking(true)?;
            let mut r = TcpListener::from_std(r);
            poll.registry()
                .register(&mut r, REGISTER, Interest::READABLE)?;
            Some(r)
        }
        None => None,
    };
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let n = set.registers.len();
    let mut io = Io {
        poll,
        inner,
        register,
        peers: slab::Slab::new(),
        next_gen: 0,
        set,
        ops,
        loop_waker,
        events,
        workers: Vec::new(),
        routes: HashMap::new(),
        reconnect: vec![Some(Instant::now()); n],
        next_ping: Instant::now() + REGISTER_PING,
        scratch: vec![0; 64 * 1024],
        dirty: Vec::new(),
        loop_woken,
        woken: Arc::clone(&woken),
    };
    std::thread::Builder::new()
        .name("gw-inner".into())
        .spawn(move || io.run())?;
    Ok(waker)
}

impl Io {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            let mut next = now + Duration::from_secs(1);
            for t in self.reconnect.iter().flatten() {
                next = next.min(*t);
            }
            let timeout = next.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    crate::error!("gatewayworker: poll failed: {e}");
                    return;
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    INNER => self.accept(false),
                    REGISTER => self.accept(true),
                    WAKE => {}
                    Token(slot) => {
                        if ev.is_writable() {
                            self.on_writable(slot);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.read(slot);
                        }
                    }
                }
            }
            if !self.drain_events() {
                return;
            }
            self.timers();
            for slot in std::mem::take(&mut self.dirty) {
                self.on_writable(slot);
            }
        }
    }

    /// Events from the loop; false once the loop is gone (the worker stops).
    fn drain_events(&mut self) -> bool {
        self.woken.store(false, Ordering::Release);
        loop {
            match self.events.try_recv() {
                Ok(Event::Reply { link, bytes }) => {
                    if self.live(link) {
                        self.queue(link.0, &bytes);
                    }
                }
                Ok(Event::Client {
                    cmd,
                    conn,
                    client_ip,
                    client_port,
                    gateway_port,
                    session,
                    body,
                    scalar,
                }) => {
                    let head = Header {
                        local_ip: self.set.lan_ip,
                        local_port: self.set.port,
                        client_ip,
                        client_port,
                        connection_id: conn,
                        flag: if scalar { FLAG_BODY_IS_SCALAR } else { 0 },
                        gateway_port,
                        ..Header::new(cmd)
                    };
                    self.route_to_worker(&head, &session, &body);
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn live(&self, link: LinkKey) -> bool {
        self.peers.get(link.0).is_some_and(|p| p.gen == link.1)
    }

    /// GatewayWorker's `routerBind` with least connections: a client stays with its
    /// BusinessWorker; a new one, or one whose worker went away, goes to the least loaded.
    fn route_to_worker(&mut self, head: &Header, session: &[u8], body: &[u8]) {
        let conn = head.connection_id;
        let bound = self
            .routes
            .get(&conn)
            .filter(|k| self.workers.iter().any(|(w, _, _)| w == *k))
            .cloned();
        let key = match bound {
            Some(k) => k,
            None => {
                let Some(best) = self.workers.iter_mut().min_by_key(|(_, n, _)| *n) else {
                    // No BusinessWorker: GatewayWorker closes the client.
                    if head.cmd != Cmd::OnClose {
                        self.op(Op::Destroy { conn });
                    }
                    return;
                };
                best.1 += 1;
                self.routes.insert(conn, best.0.clone());
                best.0.clone()
            }
        };
        if head.cmd == Cmd::OnClose {
            self.routes.remove(&conn);
            if let Some(w) = self.workers.iter_mut().find(|(w, _, _)| *w == key) {
                w.1 = w.1.saturating_sub(1);
            }
        }
        let Some(slot) = self
            .workers
            .iter()
            .find(|(w, _, _)| *w == key)
            .map(|(_, _, s)| *s as usize)
        else {
            return;
        };
        let mut out = Vec::with_capacity(frame::HEAD_LEN + session.len() + body.len());
        frame::encode(&mut out, head, session, body);
        self.queue(slot, &out);
    }

    fn op(&mut self, op: Op) {
        // One wake per batch: the loop clears the flag before it drains.
        if self.ops.send(op).is_ok() && !self.loop_woken.swap(true, Ordering::AcqRel) {
            let _ = self.loop_waker.wake();
        }
    }

    fn accept(&mut self, register: bool) {
        loop {
            let l = if register {
                match &self.register {
                    Some(r) => r,
                    None => return,
                }
            } else {
                &self.inner
            };
            let (stream, remote) = match l.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if self.peers.len() >= MAX_PEERS {
                drop(stream);
                continue;
            }
            let kind = if register {
                Kind::RegPeer
            } else {
                Kind::Inner {
                    authorized: self.set.secret.is_empty(),
                }
            };
            // Both must say who they are in time (GatewayWorker's Register allows 10 s).
            let deadline =
                (register || !self.set.secret.is_empty()).then(|| Instant::now() + AUTH_TIMEOUT);
            self.add(stream, remote, kind, deadline);
        }
    }

    fn add(
        &mut self,
        mut stream: TcpStream,
        remote: SocketAddr,
        kind: Kind,
        deadline: Option<Instant>,
    ) -> Option<usize> {
        let is_link = matches!(kind, Kind::RegLink { .. });
        let _ = stream.set_nodelay(true);
        let entry = self.peers.vacant_entry();
        let slot = entry.key();
        if slot >= INNER.0 - 8 {
            return None;
        }
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .ok()?;
        self.next_gen += 1;
        entry.insert(Peer {
            stream,
            kind,
            gen: self.next_gen,
            inbuf: Vec::new(),
            out: Vec::new(),
            lines: LineCodec::new(if is_link { MAX_LINE } else { MAX_PEER_LINE }),
            deadline,
            remote,
        });
        Some(slot)
    }

    fn read(&mut self, slot: usize) {
        loop {
            let Some(p) = self.peers.get_mut(slot) else {
                return;
            };
            match p.stream.read(&mut self.scratch) {
                Ok(0) => return self.close(slot),
                Ok(n) => {
                    p.inbuf.extend_from_slice(&self.scratch[..n]);
                    if !self.process(slot) {
                        return self.close(slot);
                    }
                    if n < self.scratch.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.close(slot),
            }
        }
    }

    /// Handle what `slot` has buffered; false to close it.
    fn process(&mut self, slot: usize) -> bool {
        let Some(p) = self.peers.get_mut(slot) else {
            return false;
        };
        let mut buf = std::mem::take(&mut p.inbuf);
        let mut used = 0;
        let ok = loop {
            let Some(p) = self.peers.get_mut(slot) else {
                return false;
            };
            let rest = &buf[used..];
            if matches!(p.kind, Kind::Inner { .. } | Kind::Business { .. }) {
                let max = match p.kind {
                    Kind::Inner { authorized: false } => MAX_HELLO_FRAME,
                    _ => self.set.max_frame,
                };
                match frame::decode(rest, max) {
                    Ok(Some((f, n))) => {
                        if !self.on_frame(slot, &f) {
                            break false;
                        }
                        used += n;
                    }
                    Ok(None) => break true,
                    Err(e) => {
                        crate::warn!("gatewayworker: inner peer {}: {e}", p.remote);
                        break false;
                    }
                }
            } else {
                match p.lines.decode(rest) {
                    Ok(Some((line, n))) => {
                        let line = line.to_vec();
                        used += n;
                        if !self.on_line(slot, &line) {
                            break false;
                        }
                    }
                    Ok(None) => break true,
                    Err(_) => break false,
                }
            }
        };
        buf.drain(..used);
        if let Some(p) = self.peers.get_mut(slot) {
            p.inbuf = buf;
        }
        ok
    }

    fn on_frame(&mut self, slot: usize, f: &frame::Frame<'_>) -> bool {
        let Some(p) = self.peers.get_mut(slot) else {
            return false;
        };
        let authorized = match p.kind {
            Kind::Inner { authorized } => authorized,
            _ => true,
        };
        let remote = p.remote;
        let gen = p.gen;
        match f.head.cmd {
            Cmd::WorkerConnect | Cmd::GatewayClientConnect => {
                #[derive(serde::Deserialize)]
                struct Hello {
                    #[serde(default)]
                    worker_key: Option<String>,
                    #[serde(default)]
                    secret_key: String,
                }
                let Ok(h) = serde_json::from_slice::<Hello>(f.body) else {
                    return false;
                };
                if h.secret_key != self.set.secret {
                    crate::warn!("gatewayworker: wrong secret_key from {remote}");
                    return false;
                }
                p.deadline = None;
                if f.head.cmd == Cmd::GatewayClientConnect {
                    p.kind = Kind::Inner { authorized: true };
                    return true;
                }
                let Some(name) = h.worker_key.filter(|k| k.len() <= 256) else {
                    return false;
                };
                let key = format!("{}:{name}", remote.ip());
                // Same key twice: the old one goes, the new one stays (as GatewayWorker).
                if let Some(at) = self.workers.iter().position(|(k, _, _)| *k == key) {
                    let old = self.workers[at].2 as usize;
                    self.close(old);
                }
                if let Some(p) = self.peers.get_mut(slot) {
                    p.kind = Kind::Business { key: key.clone() };
                }
                self.workers.push((key, 0, slot as u64));
                true
            }
            _ if !authorized => {
                crate::warn!("gatewayworker: unauthorized request from {remote}");
                false
            }
            _ => match op_of(f, (slot, gen)) {
                Ok(Some(op)) => {
                    self.op(op);
                    true
                }
                Ok(None) => true,
                Err(e) => {
                    crate::warn!("gatewayworker: bad command from {remote}: {e:?}");
                    false
                }
            },
        }
    }

    fn on_line(&mut self, slot: usize, line: &[u8]) -> bool {
        let Some(p) = self.peers.get_mut(slot) else {
            return false;
        };
        if matches!(p.kind, Kind::RegLink { .. }) {
            // A Register tells gateways nothing they need.
            return true;
        }
        p.deadline = None;
        let Ok(msg) = register::decode(line) else {
            return false;
        };
        match msg {
            RegisterMsg::GatewayConnect {
                address,
                secret_key,
            } => {
                if secret_key != self.set.secret {
                    return false;
                }
                p.kind = Kind::RegGateway { address };
                self.broadcast(None);
                true
            }
            RegisterMsg::WorkerConnect { secret_key } => {
                if secret_key != self.set.secret {
                    return false;
                }
                p.kind = Kind::RegWorker;
                self.broadcast(Some(slot));
                true
            }
            RegisterMsg::Ping => true,
            RegisterMsg::BroadcastAddresses { .. } => false,
        }
    }

    /// Send the gateway list to one worker, or to every worker.
    fn broadcast(&mut self, to: Option<usize>) {
        let mut addresses: Vec<(u64, String)> = self
            .peers
            .iter()
            .filter_map(|(_, p)| match &p.kind {
                Kind::RegGateway { address } => Some((p.gen, address.clone())),
                _ => None,
            })
            .collect();
        addresses.sort();
        let mut unique: Vec<String> = Vec::new();
        for (_, a) in addresses {
            if !unique.contains(&a) {
                unique.push(a);
            }
        }
        let mut line = Vec::new();
        register::encode(
            &mut line,
            &RegisterMsg::BroadcastAddresses { addresses: unique },
        );
        let targets: Vec<usize> = match to {
            Some(s) => vec![s],
            None => self
                .peers
                .iter()
                .filter(|(_, p)| matches!(p.kind, Kind::RegWorker))
                .map(|(s, _)| s)
                .collect(),
        };
        for s in targets {
            self.queue(s, &line);
        }
    }

    fn queue(&mut self, slot: usize, bytes: &[u8]) {
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        if p.out.len() + bytes.len() > self.set.max_out {
            crate::warn!("gatewayworker: peer {} does not read; closed", p.remote);
            return self.close(slot);
        }
        // Written once at the end of the turn: a burst of frames to one BusinessWorker goes
        // out in one write.
        if p.out.is_empty() {
            self.dirty.push(slot);
        }
        p.out.extend_from_slice(bytes);
    }

    fn on_writable(&mut self, slot: usize) {
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        if let Kind::RegLink { at, connected } = &mut p.kind {
            if !*connected {
                match p.stream.peer_addr() {
                    Ok(_) => {
                        *connected = true;
                        let at = *at;
                        let mut line = Vec::new();
                        register::encode(
                            &mut line,
                            &RegisterMsg::GatewayConnect {
                                address: self.set.address.clone(),
                                secret_key: self.set.secret.clone(),
                            },
                        );
                        let _ = at;
                        p.out.extend_from_slice(&line);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                    Err(_) => return self.close(slot),
                }
            }
        }
        while !p.out.is_empty() {
            match p.stream.write(&p.out) {
                Ok(0) => return self.close(slot),
                Ok(n) => {
                    p.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.close(slot),
            }
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(mut p) = self.peers.try_remove(slot) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut p.stream);
        match p.kind {
            Kind::Business { key } => {
                // Its clients are routed again on their next event.
                self.workers.retain(|(k, _, _)| *k != key);
            }
            Kind::RegGateway { .. } => self.broadcast(None),
            Kind::RegLink { at, .. } => {
                if let Some(r) = self.reconnect.get_mut(at) {
                    *r = Some(Instant::now() + Duration::from_secs(1));
                }
            }
            _ => {}
        }
    }

    fn timers(&mut self) {
        let now = Instant::now();
        let expired: Vec<usize> = self
            .peers
            .iter()
            .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
            .map(|(s, _)| s)
            .collect();
        for s in expired {
            self.close(s);
        }
        for at in 0..self.reconnect.len() {
            if self.reconnect[at].is_some_and(|t| t <= now) {
                self.reconnect[at] = None;
                let addr = self.set.registers[at];
                let ok = TcpStream::connect(addr).ok().and_then(|s| {
                    self.add(
                        s,
                        addr,
                        Kind::RegLink {
                            at,
                            connected: false,
                        },
                        None,
                    )
                });
                if ok.is_none() {
                    self.reconnect[at] = Some(now + Duration::from_secs(1));
                }
            }
        }
        if now >= self.next_ping {
            self.next_ping = now + REGISTER_PING;
            let mut line = Vec::new();
            register::encode(&mut line, &RegisterMsg::Ping);
            let links: Vec<usize> = self
                .peers
                .iter()
                .filter(|(_, p)| {
                    matches!(
                        p.kind,
                        Kind::RegLink {
                            connected: true,
                            ..
                        }
                    ) && !p.remote.ip().is_loopback()
                })
                .map(|(s, _)| s)
                .collect();
            for s in links {
                self.queue(s, &line);
            }
            // GatewayWorker pings BusinessWorkers off this host likewise.
            if !self.set.address.starts_with("127.") {
                let mut ping = Vec::new();
                let head = Header {
                    flag: FLAG_BODY_IS_SCALAR,
                    ..Header::new(Cmd::Ping)
                };
                frame::encode(&mut ping, &head, b"", b"");
                let ws: Vec<usize> = self.workers.iter().map(|w| w.2 as usize).collect();
                for s in ws {
                    self.queue(s, &ping);
                }
            }
        }
    }
}
