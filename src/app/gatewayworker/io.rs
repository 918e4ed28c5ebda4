//! The inner port of one worker, run in the worker's own mio loop: the inner listener
//! (BusinessWorkers and GatewayClients), the links to the Register(s), and, in the worker that
//! hosts it, the Register itself.
//!
//! It never touches client state: commands become [`Op`]s that the app carries out after each
//! event ([`Io::take_ops`]), and client events come in as frames to route. Output to peers is
//! batched and written once at the end of the loop turn ([`Io::flush`]). Every peer is hostile
//! until it proves the secret: frames and lines are bounded before anything is buffered, and a
//! bad one closes that peer only.

use super::commands::op_of;
use super::msg::{LinkKey, Op};
use super::peer::{Got, Kind, Peer, Wrote};
use super::routes::Routes;
use crate::api::{io_token, IoReady};
use crate::protocol::gateway::frame::{self, Cmd, Header, FLAG_BODY_IS_SCALAR};
use crate::protocol::gateway::register::{self, RegisterMsg};
use crate::protocol::text::LineCodec;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The app's socket numbers: the two listeners, then peer `slot` at `PEER_BASE + slot`.
const INNER: usize = 0;
const REGISTER: usize = 1;
const PEER_BASE: usize = 2;
/// Socket numbers this part uses (the wrapped app may use those above).
pub(crate) const SPAN: usize = PEER_BASE + MAX_PEERS;
/// Largest Register line we read as a gateway (a broadcast of many addresses fits easily).
const MAX_LINE: usize = 64 * 1024;
/// Largest line a Register peer may send us (`gateway_connect` with a 262-byte address).
const MAX_PEER_LINE: usize = 1024;
/// Largest frame before the secret is shown (the hello frames are a few dozen bytes), so a
/// stranger cannot make us buffer `max_frame` bytes per connection.
const MAX_HELLO_FRAME: usize = 4096;
/// A Register peer must say who it is within this time (as GatewayWorker's Register).
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive to a Register that is not on this host (GatewayWorker's 25 s).
const REGISTER_PING: Duration = Duration::from_secs(25);
/// Most inner and Register peers at once (with `max_frame` of input each at worst, once
/// authorized).
const MAX_PEERS: usize = 1024;
/// Reads of one peer per event (64 KiB each) before the rest of the loop gets a turn.
const READS_PER_EVENT: usize = 16;

/// What the inner port needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `lan_ip:port` announced to the Register.
    pub(crate) address: String,
    /// Registers to announce ourselves to.
    pub(crate) registers: Vec<SocketAddr>,
    /// Shared secret ("" = none).
    pub(crate) secret: String,
    /// Largest inner frame accepted.
    pub(crate) max_frame: usize,
    /// Most bytes queued for one peer before it is dropped as not reading.
    pub(crate) max_out: usize,
}

/// The inner port's listeners and peers.
#[derive(Debug)]
pub(crate) struct Io {
    registry: Registry,
    waker: Arc<Waker>,
    inner: TcpListener,
    register: Option<TcpListener>,
    peers: slab::Slab<Peer>,
    next_gen: u64,
    set: Settings,
    routes: Routes,
    /// When to reconnect each Register link.
    reconnect: Vec<Option<Instant>>,
    next_ping: Instant,
    scratch: Vec<u8>,
    /// Peers with output queued this turn.
    dirty: Vec<usize>,
    /// Commands decoded, for the app to carry out.
    ops: Vec<Op>,
    /// Peers whose input was not all read (the read budget ran out).
    pending: Vec<usize>,
}

impl Io {
    /// Take over the bound listeners and register them with the worker's loop.
    pub(crate) fn new(
        set: Settings,
        inner: std::net::TcpListener,
        register: Option<std::net::TcpListener>,
        registry: Registry,
        waker: Arc<Waker>,
    ) -> io::Result<Io> {
        inner.set_nonblocking(true)?;
        let mut inner = TcpListener::from_std(inner);
        registry.register(&mut inner, io_token(INNER), Interest::READABLE)?;
        let register = match register {
            Some(r) => {
                r.set_nonblocking(true)?;
                let mut r = TcpListener::from_std(r);
                registry.register(&mut r, io_token(REGISTER), Interest::READABLE)?;
                Some(r)
            }
            None => None,
        };
        let n = set.registers.len();
        Ok(Io {
            registry,
            waker,
            inner,
            register,
            peers: slab::Slab::new(),
            next_gen: 0,
            set,
            routes: Routes::default(),
            reconnect: vec![Some(Instant::now()); n],
            next_ping: Instant::now() + REGISTER_PING,
            scratch: vec![0; 64 * 1024],
            dirty: Vec::new(),
            ops: Vec::new(),
            pending: Vec::new(),
        })
    }

    /// Readiness of socket `n`.
    pub(crate) fn on_io(&mut self, n: usize, ready: IoReady) {
        match n {
            INNER => self.accept(false),
            REGISTER => self.accept(true),
            _ => {
                let slot = n - PEER_BASE;
                if ready.writable {
                    self.on_writable(slot);
                }
                if ready.readable {
                    self.read(slot);
                }
            }
        }
    }

    /// Go on reading the peers the budget stopped.
    pub(crate) fn continue_pending(&mut self) {
        for slot in std::mem::take(&mut self.pending) {
            self.read(slot);
        }
    }

    /// The commands decoded since the last call, in order.
    pub(crate) fn take_ops(&mut self) -> Vec<Op> {
        std::mem::take(&mut self.ops)
    }

    /// Give back the (drained) list [`Io::take_ops`] returned, to reuse its allocation.
    pub(crate) fn return_ops(&mut self, v: Vec<Op>) {
        if self.ops.is_empty() {
            self.ops = v;
        }
    }

    /// An answer for the peer that asked, if it is still the same connection.
    pub(crate) fn reply(&mut self, link: LinkKey, bytes: &[u8]) {
        if self.peers.get(link.0).is_some_and(|p| p.gen == link.1) {
            self.queue(link.0, bytes);
        }
    }

    /// A client event for its BusinessWorker. With none linked, GatewayWorker closes the
    /// client: a destroy op follows.
    pub(crate) fn client_event(&mut self, head: &Header, session: &[u8], body: &[u8]) {
        let conn = head.connection_id;
        let Some(slot) = self.routes.pick(conn, head.cmd == Cmd::OnClose) else {
            if head.cmd != Cmd::OnClose {
                self.ops.push(Op::Destroy { conn });
            }
            return;
        };
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        if p.out.len() + frame::HEAD_LEN + session.len() + body.len() > self.set.max_out {
            crate::warn!("gatewayworker: peer {} does not read; closed", p.remote);
            return self.close(slot);
        }
        if p.out.is_empty() {
            self.dirty.push(slot);
        }
        // Straight into the peer's queue: no frame is built apart.
        frame::encode(&mut p.out, head, session, body);
    }

    /// End of the loop turn: write what was queued.
    pub(crate) fn flush(&mut self) {
        for slot in std::mem::take(&mut self.dirty) {
            self.on_writable(slot);
        }
    }

    fn accept(&mut self, register: bool) {
        loop {
            let l = match (register, &self.register) {
                (true, Some(r)) => r,
                (true, None) => return,
                (false, _) => &self.inner,
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
        if slot >= MAX_PEERS {
            return None;
        }
        self.registry
            .register(
                &mut stream,
                io_token(PEER_BASE + slot),
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
        for _ in 0..READS_PER_EVENT {
            let Some(p) = self.peers.get_mut(slot) else {
                return;
            };
            match p.read_once(&mut self.scratch) {
                Got::Gone => return self.close(slot),
                Got::Drained => return,
                Got::Data { full } => {
                    if !self.process(slot) {
                        return self.close(slot);
                    }
                    if !full {
                        return;
                    }
                }
            }
        }
        // Edge-triggered: no new event will come for what is left, so ask for another turn.
        if !self.pending.contains(&slot) {
            self.pending.push(slot);
        }
        let _ = self.waker.wake();
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
            if matches!(p.kind, Kind::Inner { .. } | Kind::Business) {
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
                p.kind = Kind::Business;
                // Same key twice: the old one goes, the new one stays (as GatewayWorker).
                if let Some(old) = self.routes.add(key, slot) {
                    self.close(old);
                }
                true
            }
            _ if !authorized => {
                crate::warn!("gatewayworker: unauthorized request from {remote}");
                false
            }
            _ => match op_of(f, (slot, gen)) {
                Ok(Some(op)) => {
                    self.ops.push(op);
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
        // Written once at the end of the turn: a burst of frames to one peer goes out in one
        // write.
        if p.out.is_empty() {
            self.dirty.push(slot);
        }
        p.out.extend_from_slice(bytes);
    }

    fn on_writable(&mut self, slot: usize) {
        let Some(p) = self.peers.get_mut(slot) else {
            return;
        };
        if let Kind::RegLink { connected, .. } = &mut p.kind {
            if !*connected {
                match p.stream.peer_addr() {
                    Ok(_) => {
                        *connected = true;
                        let mut line = Vec::new();
                        register::encode(
                            &mut line,
                            &RegisterMsg::GatewayConnect {
                                address: self.set.address.clone(),
                                secret_key: self.set.secret.clone(),
                            },
                        );
                        p.out.extend_from_slice(&line);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                    Err(_) => return self.close(slot),
                }
            }
        }
        if p.write_out() == Wrote::Gone {
            self.close(slot);
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(mut p) = self.peers.try_remove(slot) else {
            return;
        };
        let _ = self.registry.deregister(&mut p.stream);
        match p.kind {
            Kind::Business => self.routes.remove(slot),
            Kind::RegGateway { .. } => self.broadcast(None),
            Kind::RegLink { at, .. } => {
                if let Some(r) = self.reconnect.get_mut(at) {
                    *r = Some(Instant::now() + Duration::from_secs(1));
                }
            }
            _ => {}
        }
    }

    /// Once a second: the hello deadlines, Register reconnects and keep-alives.
    pub(crate) fn tick(&mut self) {
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
                let link = Kind::RegLink {
                    at,
                    connected: false,
                };
                // A non-blocking connect: writable readiness says when it is done.
                let ok = TcpStream::connect(addr)
                    .ok()
                    .and_then(|s| self.add(s, addr, link, None));
                if ok.is_none() {
                    self.reconnect[at] = Some(now + Duration::from_secs(1));
                }
            }
        }
        if now >= self.next_ping {
            self.next_ping = now + REGISTER_PING;
            self.ping();
        }
    }

    fn ping(&mut self) {
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
            let ws: Vec<usize> = self.routes.slots().collect();
            for s in ws {
                self.queue(s, &ping);
            }
        }
    }

    /// The worker stops: every socket leaves the loop and closes.
    pub(crate) fn shutdown(&mut self) {
        let _ = self.registry.deregister(&mut self.inner);
        if let Some(r) = &mut self.register {
            let _ = self.registry.deregister(r);
        }
        for (_, mut p) in std::mem::take(&mut self.peers) {
            let _ = self.registry.deregister(&mut p.stream);
        }
    }
}
