//! Accepting connections: the listeners, budgets per event, EMFILE back-off, the connection
//! cap and the per-address cap, and a new connection's first deadline.

use super::{input, Base, LISTENER_BASE};
use crate::config::{Config, ListenSpec, Scheme};
use crate::connection::Conn;
use crate::gateway::client_id::ConnId;
use crate::state::timer::Due;
use mio::net::TcpListener;
use mio::{Interest, Registry, Token};
use std::io;
use std::time::Duration;

/// Connections accepted per listener per event before giving others a turn.
const ACCEPT_BUDGET: usize = 256;
/// Pause after EMFILE/ENFILE before accepting again (the classic busy-loop trap otherwise).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

struct Listener {
    sock: TcpListener,
    spec: ListenSpec,
    /// The TLS settings of a TLS listener.
    tls: Option<crate::tls::Acceptor>,
    /// Accept budget ran out with connections possibly still queued.
    pending: bool,
    /// Its WebSocket clients may negotiate permessage-deflate.
    deflate: bool,
}

/// The worker's listening sockets and whether accepting is paused.
pub(super) struct Listeners {
    list: Vec<Listener>,
    /// Paused at the connection cap or on EMFILE; a `ResumeAccept` timer lifts it.
    paused: bool,
}

impl Listeners {
    /// Take the config's listeners from `inherited` (by URL), binding any the master does not
    /// hold, and register them with the poll.
    pub(super) fn open(
        cfg: &Config,
        registry: &Registry,
        mut inherited: Vec<(String, std::net::TcpListener)>,
    ) -> Result<Listeners, String> {
        let mut list = Vec::new();
        for (i, spec) in cfg.listen.iter().enumerate() {
            let url = spec.to_string();
            let std_l = match inherited.iter().position(|(s, _)| *s == url) {
                Some(at) => inherited.swap_remove(at).1,
                // A listener the master does not hold (added to the config for this reload,
                // or a worker run without a master): this worker's own, with SO_REUSEPORT.
                None => crate::sys::socket::bind_listener(spec.addr, true)
                    .map_err(|e| format!("cannot listen on {spec}: {e}"))?,
            };
            let tls = match spec.tls {
                false => None,
                true => Some(super::tls::acceptor(spec)?),
            };
            let mut sock = TcpListener::from_std(std_l);
            registry
                .register(&mut sock, Token(LISTENER_BASE + i), Interest::READABLE)
                .map_err(|e| format!("register {spec}: {e}"))?;
            list.push(Listener {
                sock,
                spec: spec.clone(),
                tls,
                pending: false,
                deflate: spec.compresses(&cfg.websocket),
            });
        }
        Ok(Listeners {
            list,
            paused: false,
        })
    }

    /// The listen URLs, as announced to the master.
    pub(super) fn urls(&self) -> Vec<String> {
        self.list.iter().map(|l| l.spec.to_string()).collect()
    }

    /// A listener has connections left over from an exhausted accept budget.
    pub(super) fn has_pending(&self) -> bool {
        !self.paused && self.list.iter().any(|l| l.pending)
    }

    /// Accept what the last turn's budget left queued.
    pub(super) fn continue_pending(&mut self, b: &mut Base) {
        for i in 0..self.list.len() {
            if self.list[i].pending && !self.paused {
                self.accept(b, i);
            }
        }
    }

    /// The back-off is over: accept again (on every listener, if still `accepting`).
    pub(super) fn resume(&mut self, b: &mut Base, accepting: bool) {
        self.paused = false;
        if accepting {
            for i in 0..self.list.len() {
                self.accept(b, i);
            }
        }
    }

    /// Stop accepting: deregister and close every listener.
    pub(super) fn close(&mut self, registry: &Registry) {
        for mut l in std::mem::take(&mut self.list) {
            let _ = registry.deregister(&mut l.sock);
        }
    }

    /// Accept from listener `i` up to the budget.
    pub(super) fn accept(&mut self, b: &mut Base, i: usize) {
        let Some(l) = self.list.get_mut(i) else {
            return;
        };
        l.pending = false;
        for _ in 0..ACCEPT_BUDGET {
            if self.paused {
                return;
            }
            if b.core.conns.len() >= b.core.limits.max_connections {
                // At the cap: leave the rest in the kernel backlog and look again shortly.
                self.pause(b);
                return;
            }
            let Some(l) = self.list.get_mut(i) else {
                return;
            };
            match l.sock.accept() {
                Ok((stream, remote)) => {
                    let scheme = l.spec.scheme;
                    let tls = l.tls.clone();
                    let deflate = l.deflate;
                    if b.peers.admit(remote.ip()) {
                        add_conn(b, stream, remote, scheme, tls, deflate);
                    } else {
                        // Dropping the stream closes it: the address already holds its share.
                        if let Some(skipped) = b.quiet.allow(b.core.now) {
                            crate::warn!(
                                "refusing connections from {} over limits.max_connections_per_ip \
                                 ({skipped} more refusals since the last warning)",
                                remote.ip()
                            );
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => match e.raw_os_error() {
                    Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS)
                    | Some(libc::ENOMEM) => {
                        // Every 100 ms while the condition lasts: say it once per period.
                        if let Some(skipped) = b.quiet.allow(b.core.now) {
                            crate::warn!(
                                "accept: {e}; pausing accepts for {ACCEPT_BACKOFF:?} \
                                 ({skipped} more since the last warning)"
                            );
                        }
                        self.pause(b);
                        return;
                    }
                    // ECONNABORTED and friends concern one connection only.
                    _ => {}
                },
            }
        }
        if let Some(l) = self.list.get_mut(i) {
            l.pending = true;
        }
    }

    fn pause(&mut self, b: &mut Base) {
        if !self.paused {
            self.paused = true;
            b.core
                .timers
                .schedule(b.core.now + ACCEPT_BACKOFF, Due::ResumeAccept);
        }
    }
}

/// Register an accepted stream and give it its first deadline (the handshake's, or for a plain
/// text client, which is connected at once, the idle one).
fn add_conn(
    b: &mut Base,
    mut stream: mio::net::TcpStream,
    remote: std::net::SocketAddr,
    scheme: Scheme,
    tls: Option<crate::tls::Acceptor>,
    deflate: bool,
) {
    let _ = stream.set_nodelay(true);
    let session = match tls.map(|a| a.session()) {
        None => None,
        Some(Ok(s)) => Some(Box::new(s)),
        Some(Err(e)) => {
            crate::debug!("tls {remote}: no session: {e}");
            b.peers.release(remote.ip());
            return;
        }
    };
    let tls_text = scheme == Scheme::Text && session.is_some();
    let core = &mut b.core;
    let gen = core.next_gen;
    core.next_gen = core.next_gen.wrapping_add(1);
    let entry = core.conns.vacant_entry();
    let slot = entry.key();
    if b.poll
        .registry()
        .register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        )
        .is_err()
    {
        b.peers.release(remote.ip());
        return;
    }
    // Already the tighter of the config's bound and the app's.
    let max_line = core.limits.max_package_size;
    entry.insert(Conn::new(
        gen, stream, scheme, remote, core.now, max_line, deflate,
    ));
    let id = ConnId {
        slot: slot as u32,
        gen,
    };
    if let Some(s) = session {
        if !super::tls::accepted(b, id, s) {
            return;
        }
    }
    let core = &mut b.core;
    let deadline = match scheme {
        // Over TLS, the text protocol has a handshake too (`tls::established`).
        Scheme::Text if !tls_text => {
            let idle = core.limits.idle_timeout;
            (!idle.is_zero()).then(|| core.now + idle)
        }
        _ => {
            let d = core.now + core.limits.handshake_timeout;
            if let Some(c) = core.conns.get_mut(slot) {
                c.deadline = Some(d);
            }
            Some(d)
        }
    };
    if let Some(d) = deadline {
        core.arm_conn_timer(slot, d);
    }
    if scheme == Scheme::Text && !tls_text {
        input::connected(core, b.app.as_mut(), id);
    }
}
