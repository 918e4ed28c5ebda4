//! GatewayWorker compatibility: every worker is a GatewayWorker gateway.
//!
//! [`GatewayWorker`] wraps any app. It numbers the worker's clients as GatewayWorker does
//! (20 hex digits: lan IP, inner port, connection number; `gateway::gw_id`), runs the inner
//! port in the worker's own loop (`io.rs`: BusinessWorkers, GatewayClient, the Register links
//! and, in worker 0, the Register; `peer.rs`, `routes.rs`), carries out their commands on this worker's clients (`answer.rs`) and, as the
//! `gatewayworker` app, hands every client event to a BusinessWorker (GatewayWorker's
//! `routerBind`). The wrapped app's events still run, so a PHP backend can push to kefu's own
//! apps' clients through GatewayClient.

mod answer;
mod commands;
mod io;
mod msg;
mod peer;
mod routes;

use crate::api::{
    AdminEvent, App, ClientId, ClientInfo, Ctx, HttpOutcome, IoReady, Reject, Request, StartError,
    TimerId, Transport,
};
use crate::config::Config;
use crate::gateway::gw_id;
use crate::protocol::gateway::frame::{Cmd, Header, FLAG_BODY_IS_SCALAR};
use crate::protocol::php::{self, Key, Php};
use crate::protocol::Payload;
use msg::ConnNo;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

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
    /// The inner port, once started.
    io: Option<io::Io>,
    /// Its once-a-second timer.
    tick: Option<TimerId>,
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
            io: None,
            tick: None,
            handshakes: HashMap::new(),
        }
    }

    /// Carry out the commands the inner port decoded, and send back the answers.
    fn run_ops(&mut self, cx: &mut Ctx<'_>) {
        let Some(io) = &mut self.io else {
            return;
        };
        let mut ops = io.take_ops();
        for op in ops.drain(..) {
            if let Some((link, bytes)) = answer::run(cx, &self.local, op) {
                io.reply(link, &bytes);
            }
        }
        io.return_ops(ops);
    }

    fn client_event(&mut self, cx: &mut Ctx<'_>, cmd: Cmd, c: ClientId, body: &[u8], scalar: bool) {
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
        let Some(io) = &mut self.io else {
            return;
        };
        let head = Header {
            local_ip: self.local.lan_ip,
            local_port: self.local.port,
            client_ip,
            client_port,
            connection_id: conn,
            flag: if scalar { FLAG_BODY_IS_SCALAR } else { 0 },
            gateway_port: self.gateway_port,
            ..Header::new(cmd)
        };
        io.client_event(&head, &session, body);
        self.run_ops(cx);
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
            registers,
            secret: self.cfg.secret_key.clone(),
            max_frame: self.cfg.max_frame,
            max_out: self.max_send_buffer,
        };
        let mut io = io::Io::new(set, inner, register, cx.io_registry()?, cx.waker())?;
        // The Register links connect now, not a second from now.
        io.tick();
        self.io = Some(io);
        self.tick = Some(cx.add_timer(Duration::from_secs(1), true, 0));
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
            self.client_event(cx, Cmd::OnConnect, id, b"", true);
            if let Some(data) = self.handshakes.remove(&id) {
                self.client_event(cx, Cmd::OnWebSocketConnect, id, &data, false);
            }
        }
    }

    fn on_message(&mut self, cx: &mut Ctx<'_>, id: ClientId, msg: Payload<'_>) {
        self.app.on_message(cx, id, msg);
        if self.forward {
            self.client_event(cx, Cmd::OnMessage, id, msg.bytes(), true);
        }
    }

    fn on_close(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        self.handshakes.remove(&id);
        if self.forward {
            self.client_event(cx, Cmd::OnClose, id, b"", true);
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
        if let Some(io) = &mut self.io {
            io.continue_pending();
            self.run_ops(cx);
        }
        self.app.on_wake(cx);
    }

    fn on_io(&mut self, cx: &mut Ctx<'_>, n: usize, ready: IoReady) {
        match &mut self.io {
            Some(io) if n < io::SPAN => {
                io.on_io(n, ready);
                self.run_ops(cx);
            }
            _ => self.app.on_io(cx, n, ready),
        }
    }

    fn on_turn_end(&mut self, cx: &mut Ctx<'_>) {
        self.app.on_turn_end(cx);
        if let Some(io) = &mut self.io {
            io.flush();
        }
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_>, timer: TimerId, tag: u64) {
        match &mut self.io {
            Some(io) if self.tick == Some(timer) => io.tick(),
            _ => self.app.on_timer(cx, timer, tag),
        }
    }

    fn on_worker_stop(&mut self, cx: &mut Ctx<'_>) {
        self.app.on_worker_stop(cx);
        if let Some(mut io) = self.io.take() {
            io.shutdown();
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
