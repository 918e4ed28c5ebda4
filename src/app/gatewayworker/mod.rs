//! GatewayWorker compatibility: every worker is a GatewayWorker gateway.
//!
//! [`GatewayWorker`] wraps any app. It numbers the worker's clients as GatewayWorker does
//! (20 hex digits: lan IP, inner port, connection counter), runs the inner port in its own
//! thread (`io.rs`: BusinessWorkers, GatewayClient, the Register links and, in worker 0, the
//! Register), carries out their commands on this worker's clients (`answer.rs`) and, as the
//! `gatewayworker` app, hands every client event to a BusinessWorker (GatewayWorker's
//! `routerBind`). The wrapped app's events still run, so a PHP backend can push to kefu's own
//! apps' clients through GatewayClient.

mod answer;
mod commands;
mod io;
mod msg;

use crate::api::{
    AdminEvent, App, ClientId, ClientInfo, Ctx, HttpOutcome, Reject, Request, StartError, TimerId,
    Transport,
};
use crate::config::Config;
use crate::gateway::gw_id;
use crate::protocol::gateway::frame::Cmd;
use crate::protocol::php::{self, Key, Php};
use crate::protocol::Payload;
use msg::{ConnNo, Event, Op};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

/// Ops carried out per wake before the loop gets a turn (the rest wake it again).
const OPS_PER_WAKE: usize = 4096;

/// The app of the `gatewayworker` name: nothing of its own, every event goes to PHP.
#[derive(Debug, Default)]
pub struct Forward;

impl App for Forward {
    fn on_message(&mut self, _cx: &mut Ctx<'_>, _id: ClientId, _msg: Payload<'_>) {}
}

/// This worker's clients by GatewayWorker connection id, and back.
#[derive(Debug)]
pub(crate) struct Local {
    by_no: HashMap<ConnNo, ClientId>,
    by_client: HashMap<ClientId, ConnNo>,
    lan_ip: u32,
    port: u16,
}

impl Local {
    fn client(&self, n: ConnNo) -> Option<ClientId> {
        self.by_no.get(&n).copied()
    }

    fn conn(&self, c: ClientId) -> Option<ConnNo> {
        self.by_client.get(&c).copied()
    }

    fn len(&self) -> usize {
        self.by_no.len()
    }

    fn iter(&self) -> impl Iterator<Item = (ConnNo, ClientId)> + '_ {
        self.by_no.iter().map(|(n, c)| (*n, *c))
    }

    fn sorted(&self) -> Vec<(ConnNo, ClientId)> {
        let mut v: Vec<_> = self.iter().collect();
        v.sort_unstable();
        v
    }

    /// Number `c` (derived from its id, see `gateway::gw_id`); `None` for the one connection
    /// in 2^32 whose number is 0 or, after the generation counter wrapped, still in use.
    fn add(&mut self, c: ClientId) -> Option<ConnNo> {
        let n = gw_id::conn_no(c);
        if !gw_id::usable(c) || self.by_no.contains_key(&n) {
            return None;
        }
        self.by_no.insert(n, c);
        self.by_client.insert(c, n);
        Some(n)
    }

    fn remove(&mut self, c: ClientId) -> Option<ConnNo> {
        let n = self.by_client.remove(&c)?;
        self.by_no.remove(&n);
        Some(n)
    }

    /// GatewayWorker's client id: `bin2hex(pack('NnN', ip, port, connection_id))`.
    fn text_id(&self, n: ConnNo) -> String {
        format!("{:08x}{:04x}{:08x}", self.lan_ip, self.port, n)
    }
}

/// Any app, made a GatewayWorker gateway.
pub struct GatewayWorker {
    app: Box<dyn App>,
    forward: bool,
    cfg: crate::config::GatewayWorkerConfig,
    max_send_buffer: usize,
    gateway_port: u16,
    local: Local,
    handle: Option<io::Handle>,
    ops: Option<Receiver<Op>>,
    /// Set by the thread when it wakes the loop; cleared here before draining.
    ops_woken: Arc<AtomicBool>,
    /// Handshake data for `CMD_ON_WEBSOCKET_CONNECT`, until `on_connect`.
    handshakes: HashMap<ClientId, Vec<u8>>,
}

impl std::fmt::Debug for GatewayWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayWorker")
            .field("forward", &self.forward)
            .field("clients", &self.local.len())
            .finish()
    }
}

impl GatewayWorker {
    /// Wrap `app`; with `forward`, client events go to BusinessWorkers.
    pub fn new(app: Box<dyn App>, cfg: &Config, forward: bool) -> GatewayWorker {
        let g = cfg.gatewayworker.clone();
        let lan_ip = g.lan_ip.parse::<Ipv4Addr>().map_or(0, u32::from);
        let gateway_port = cfg.listen.first().map_or(0, |l| l.addr.port());
        GatewayWorker {
            app,
            forward,
            max_send_buffer: cfg.limits.max_send_buffer.max(10 << 20),
            gateway_port,
            local: Local {
                by_no: HashMap::new(),
                by_client: HashMap::new(),
                lan_ip,
                port: g.start_port,
            },
            cfg: g,
            handle: None,
            ops: None,
            ops_woken: Arc::new(AtomicBool::new(false)),
            handshakes: HashMap::new(),
        }
    }

    fn send(&self, ev: Event) {
        if let Some(h) = &self.handle {
            if h.tx.send(ev).is_ok() && !h.woken.swap(true, Ordering::AcqRel) {
                let _ = h.waker.wake();
            }
        }
    }

    fn client_event(&self, cx: &Ctx<'_>, cmd: Cmd, c: ClientId, body: Vec<u8>, scalar: bool) {
        let Some(conn) = self.local.conn(c) else {
            return;
        };
        let (client_ip, client_port) = match cx.remote_addr(c) {
            Some(SocketAddr::V4(a)) => (u32::from(*a.ip()), a.port()),
            Some(SocketAddr::V6(a)) => (a.ip().to_ipv4_mapped().map_or(0, u32::from), a.port()),
            None => (0, 0),
        };
        let session = match cx.get_session(c) {
            Some(m) if !m.is_empty() => php::serialize_session(m).unwrap_or_default(),
            _ => Vec::new(),
        };
        self.send(Event::Client {
            cmd,
            conn,
            client_ip,
            client_port,
            gateway_port: self.gateway_port,
            session,
            body,
            scalar,
        });
    }

    fn start(&mut self, cx: &mut Ctx<'_>) -> Result<(), StartError> {
        let port = self
            .cfg
            .start_port
            .checked_add(cx.worker_id() as u16)
            .ok_or("gatewayworker: inner port out of range")?;
        self.local.port = port;
        let lan: Ipv4Addr = self.cfg.lan_ip.parse()?;
        // GatewayWorker listens on all interfaces when the lan IP is public, else on it.
        let bind_ip = if lan.is_private() || lan.is_loopback() {
            lan
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        let inner = crate::sys::socket::bind_listener(SocketAddr::from((bind_ip, port)), true)
            .map_err(|e| format!("gatewayworker: cannot listen on {bind_ip}:{port}: {e}"))?;
        let register = if cx.worker_id() == 0 && !self.cfg.register_listen.is_empty() {
            let a: SocketAddr = self.cfg.register_listen.parse()?;
            Some(
                crate::sys::socket::bind_listener(a, true)
                    .map_err(|e| format!("gatewayworker: cannot listen on {a}: {e}"))?,
            )
        } else {
            None
        };
        let mut registers = Vec::new();
        for r in &self.cfg.register_address {
            registers.push(r.parse()?);
        }
        let set = io::Settings {
            address: format!("{lan}:{port}"),
            lan_ip: u32::from(lan),
            port,
            registers,
            secret: self.cfg.secret_key.clone(),
            max_frame: self.cfg.max_frame,
            max_out: self.max_send_buffer,
        };
        let (ops_tx, ops_rx) = mpsc::channel();
        let (ev_tx, ev_rx) = mpsc::channel();
        let woken = Arc::new(AtomicBool::new(false));
        let wiring = io::Wiring {
            ops: ops_tx,
            loop_waker: cx.waker(),
            loop_woken: Arc::clone(&self.ops_woken),
            events: ev_rx,
            woken: Arc::clone(&woken),
        };
        let waker = io::start(set, inner, register, wiring)?;
        self.handle = Some(io::Handle {
            tx: ev_tx,
            waker,
            woken,
        });
        self.ops = Some(ops_rx);
        Ok(())
    }
}

/// `$_GET`, `$_SERVER` and `$_COOKIE` of a handshake, as GatewayWorker's Gateway sends them.
fn handshake_data(cx: &Ctx<'_>, c: ClientId, req: &Request) -> Vec<u8> {
    let s = |x: &str| Php::Str(x.as_bytes().to_vec());
    let k = |x: &str| Key::from_bytes(x.as_bytes());
    let mut get = Vec::new();
    for kv in req.query.split('&').filter(|kv| !kv.is_empty()) {
        let name = kv.split_once('=').map_or(kv, |(n, _)| n);
        let key = k(name);
        if !get.iter().any(|(have, _)| *have == key) {
            let v = req.query_param(name).unwrap_or_default();
            get.push((key, s(&v)));
        }
    }
    let remote = cx.remote_addr(c);
    let uri = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let host = req.header("host").unwrap_or_default();
    let mut server = vec![
        (k("QUERY_STRING"), s(&req.query)),
        (k("REQUEST_METHOD"), s(&req.method)),
        (k("REQUEST_URI"), s(&uri)),
        (
            k("SERVER_PROTOCOL"),
            s(&format!("HTTP/1.{}", req.minor_version)),
        ),
        (
            k("SERVER_NAME"),
            s(host.rsplit_once(':').map_or(host, |(h, _)| h)),
        ),
        (
            k("CONTENT_TYPE"),
            req.header("content-type").map_or(Php::Null, s),
        ),
        (
            k("REMOTE_ADDR"),
            s(&remote.map(|a| a.ip().to_string()).unwrap_or_default()),
        ),
        (
            k("REMOTE_PORT"),
            Php::Int(remote.map_or(0, |a| i64::from(a.port()))),
        ),
    ];
    for (name, value) in &req.headers {
        let key = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        let key = k(&key);
        if !server.iter().any(|(have, _)| *have == key) {
            server.push((key, s(value)));
        }
    }
    let mut cookie: Vec<(Key, Php)> = Vec::new();
    for (n, v) in req.cookies() {
        let key = k(&n);
        if !cookie.iter().any(|(have, _)| *have == key) {
            cookie.push((key, s(&v)));
        }
    }
    let v = Php::Array(vec![
        (k("get"), Php::Array(get)),
        (k("server"), Php::Array(server)),
        (k("cookie"), Php::Array(cookie)),
    ]);
    let mut out = Vec::new();
    php::serialize(&v, &mut out);
    out
}

impl App for GatewayWorker {
    fn on_worker_start(&mut self, cx: &mut Ctx<'_>) -> Result<(), StartError> {
        self.start(cx)?;
        self.app.on_worker_start(cx)
    }

    fn on_websocket_connect(
        &mut self,
        cx: &mut Ctx<'_>,
        id: ClientId,
        req: &Request,
    ) -> Result<(), Reject> {
        self.app.on_websocket_connect(cx, id, req)?;
        if self.forward {
            self.handshakes.insert(id, handshake_data(cx, id, req));
        }
        Ok(())
    }

    fn on_connect(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        if self.local.add(id).is_none() {
            crate::warn!("gatewayworker: no free connection number for {id}; closed");
            let _ = cx.destroy_client(id);
        }
        self.app.on_connect(cx, id);
        if self.forward {
            self.client_event(cx, Cmd::OnConnect, id, Vec::new(), true);
            if let Some(data) = self.handshakes.remove(&id) {
                self.client_event(cx, Cmd::OnWebSocketConnect, id, data, false);
            }
        }
    }

    fn on_message(&mut self, cx: &mut Ctx<'_>, id: ClientId, msg: Payload<'_>) {
        self.app.on_message(cx, id, msg);
        if self.forward {
            self.client_event(cx, Cmd::OnMessage, id, msg.bytes().to_vec(), true);
        }
    }

    fn on_close(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        self.handshakes.remove(&id);
        if self.forward {
            self.client_event(cx, Cmd::OnClose, id, Vec::new(), true);
        }
        self.app.on_close(cx, id);
        self.local.remove(id);
    }

    fn on_adopt(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        // A reload's successor keeps the incarnation and the generations: the same numbers.
        self.local.add(id);
        self.app.on_adopt(cx, id);
    }

    fn settled(&self) -> bool {
        self.app.settled()
    }

    fn on_http(&mut self, cx: &mut Ctx<'_>, conn: ClientId, req: &Request) -> HttpOutcome {
        self.app.on_http(cx, conn, req)
    }

    fn on_wake(&mut self, cx: &mut Ctx<'_>) {
        if let Some(rx) = self.ops.take() {
            self.ops_woken.store(false, Ordering::Release);
            for n in 0.. {
                if n == OPS_PER_WAKE {
                    // More next turn: let client traffic in between.
                    let _ = cx.waker().wake();
                    break;
                }
                let Ok(op) = rx.try_recv() else {
                    break;
                };
                if let Some((link, bytes)) = answer::run(cx, &self.local, op) {
                    self.send(Event::Reply { link, bytes });
                }
            }
            self.ops = Some(rx);
        }
        self.app.on_wake(cx);
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_>, timer: TimerId, tag: u64) {
        self.app.on_timer(cx, timer, tag);
    }

    fn on_worker_stop(&mut self, cx: &mut Ctx<'_>) {
        self.app.on_worker_stop(cx);
        // Dropping the sender ends the thread (and closes its sockets) at its next wake.
        if let Some(h) = self.handle.take() {
            drop(h.tx);
            let _ = h.waker.wake();
        }
    }

    fn on_peer_lost(&mut self, cx: &mut Ctx<'_>, gone: &[(ClientId, ClientInfo)]) {
        self.app.on_peer_lost(cx, gone);
    }

    fn on_admin(&mut self, cx: &mut Ctx<'_>, event: &AdminEvent) {
        self.app.on_admin(cx, event);
    }

    fn reserves_name(&self, name: &str) -> bool {
        self.app.reserves_name(name)
    }

    fn transport(&self) -> Transport {
        self.app.transport()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::client_id::ConnId;

    #[test]
    fn numbers_follow_the_ids_and_a_taken_one_is_refused() {
        let mut l = Local {
            by_no: HashMap::new(),
            by_client: HashMap::new(),
            lan_ip: 0x7f00_0001,
            port: 2300,
        };
        let a = ClientId::new(9, ConnId { slot: 1, gen: 5 });
        let n = l.add(a).unwrap();
        assert_eq!(n, gw_id::conn_no(a));
        assert_eq!(l.client(n), Some(a));
        // Another slot with the same generation (the counter wrapped): refused.
        assert_eq!(l.add(ClientId::new(9, ConnId { slot: 2, gen: 5 })), None);
        // The generation whose number is 0.
        let zero = ClientId::new(
            9,
            ConnId {
                slot: 3,
                gen: gw_id::gen_of(9, 0),
            },
        );
        assert_eq!(l.add(zero), None);
        assert_eq!(l.remove(a), Some(n));
        assert_eq!(l.client(n), None);
        assert_eq!(l.text_id(7), "7f00000108fc00000007");
    }
}
