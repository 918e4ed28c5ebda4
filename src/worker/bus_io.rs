//! The worker side of the bus: adopting links the master hands over, reading and applying
//! what peers send, and dropping a peer's clients the moment its link breaks.

use super::{Worker, BUS_BASE, LISTENER_BASE};
use crate::gateway::bus::wire::{self, BusMsg};
use crate::state::apply;
use mio::{Events, Interest, Token};
use std::io::{self, Read};
use std::os::fd::OwnedFd;

/// Bytes read from one link per event before giving others a turn.
const LINK_READ_BUDGET: usize = 1024 * 1024;

impl Worker {
    /// Adopt a link to worker `inc` and send it everything it needs to know of our clients.
    pub(super) fn add_peer(&mut self, inc: u64, worker_id: usize, fd: OwnedFd) {
        let std_sock = std::os::unix::net::UnixStream::from(fd);
        if std_sock.set_nonblocking(true).is_err() {
            return;
        }
        let sock = mio::net::UnixStream::from_std(std_sock);
        let slot = self.core.bus.add_link(inc, worker_id, sock);
        let Some(link) = self.core.bus.links.get_mut(slot) else {
            return;
        };
        if self
            .poll
            .registry()
            .register(
                &mut link.sock,
                Token(BUS_BASE + slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.core.bus.remove_link(slot);
            return;
        }
        // The peer may have started after our clients connected: replay our own state.
        let mine: Vec<_> = self.core.reg.clients_of_worker(self.core.inc).collect();
        for c in mine {
            let Some(id) = self.core.local(c) else {
                continue;
            };
            let k = id;
            let Some(info) = self.core.reg.get(c) else {
                continue;
            };
            let uid = info.uid.clone();
            let groups = info.groups.clone();
            let session = (!info.session.is_empty())
                .then(|| serde_json::to_vec(&info.session).unwrap_or_default());
            let bus = &mut self.core.bus;
            bus.send(inc, &BusMsg::Up(k));
            if let Some(u) = &uid {
                bus.send(inc, &BusMsg::Bind(k, u));
            }
            for g in &groups {
                bus.send(inc, &BusMsg::Join(k, g));
            }
            if let Some(s) = &session {
                bus.send(inc, &BusMsg::Session(k, s));
            }
        }
        crate::info!(
            "worker {} linked to worker {worker_id} (incarnation {inc:x})",
            self.core.worker_id
        );
    }

    /// Handle this turn's bus link events, before any client event: what a peer changed
    /// before a client's request was sent is then applied before that request is handled
    /// (peers write their bus messages before their answers, see `flush_dirty`).
    pub(super) fn bus_events(&mut self, events: &Events) {
        for ev in events.iter() {
            let Token(t) = ev.token();
            if !(BUS_BASE..LISTENER_BASE).contains(&t) {
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.link_readable(t - BUS_BASE);
            }
            if ev.is_writable() {
                self.core.bus.mark_writable(t - BUS_BASE);
            }
        }
    }

    /// Read and apply what link `slot` sent.
    pub(super) fn link_readable(&mut self, slot: usize) {
        let mut total = 0;
        loop {
            let Some(l) = self.core.bus.links.get_mut(slot) else {
                return;
            };
            let n = match l.sock.read(&mut self.scratch) {
                Ok(0) => return self.drop_link(slot, "closed"),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.drop_link(slot, "failed"),
            };
            l.inbuf.extend_from_slice(&self.scratch[..n]);
            let from = l.inc;
            let mut buf = std::mem::take(&mut l.inbuf);
            let mut at = 0;
            let res = loop {
                match wire::decode(&buf[at..]) {
                    Ok(Some((m, used))) => {
                        at += used;
                        apply::apply(&mut self.core, from, m);
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            buf.drain(..at);
            if let Err(e) = res {
                crate::error!("bus link from {from:x}: {e}; dropping it");
                return self.drop_link(slot, "corrupt");
            }
            if let Some(l) = self.core.bus.links.get_mut(slot) {
                l.inbuf = buf;
            }
            self.apply_closes();
            total += n;
            if total >= LINK_READ_BUDGET {
                self.reread_links.push(slot);
                return;
            }
        }
    }

    /// Forget a peer: its link and, at once, all of its clients.
    pub(super) fn drop_link(&mut self, slot: usize, why: &str) {
        if let Some(mut l) = self.core.bus.remove_link(slot) {
            let _ = self.poll.registry().deregister(&mut l.sock);
            let (n, gone) = self.core.reg.drop_worker(l.inc);
            crate::info!(
                "bus link to worker {} {why}; forgot its {n} client(s)",
                l.worker_id
            );
            // A worker that stopped cleanly closed its clients and sent their departures
            // before its link ended, so what is left here was never closed: a crash.
            if !gone.is_empty() {
                super::input::guarded(&mut self.core, None, "on_peer_lost", |cx| {
                    self.app.on_peer_lost(cx, &gone)
                });
            }
        }
    }
}
