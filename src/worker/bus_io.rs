//! The worker side of the bus: adopting links the master hands over, reading and applying
//! what peers send, writing what we queued, and dropping a peer's clients the moment its link
//! breaks. The links themselves live in `Core::bus`.

use super::input::guarded;
use super::{close, Base, BUS_BASE, LISTENER_BASE};
use crate::gateway::bus::wire::{self, BusMsg};
use crate::state::apply;
use crate::state::timer::Due;
use mio::{Events, Interest, Token};
use std::io::{self, Read};
use std::os::fd::OwnedFd;

/// Bytes read from one link per event before giving others a turn.
const LINK_READ_BUDGET: usize = 1024 * 1024;

/// The loop's bookkeeping of the bus links.
#[derive(Debug, Default)]
pub(super) struct Links {
    /// Links with unread input left over from an exhausted read budget.
    reread: Vec<usize>,
}

impl Links {
    /// Some link is to be read again next turn.
    pub(super) fn has_pending(&self) -> bool {
        !self.reread.is_empty()
    }

    /// Adopt a link to worker `inc` and send it everything it needs to know of our clients.
    pub(super) fn add_peer(&mut self, b: &mut Base, inc: u64, worker_id: usize, fd: OwnedFd) {
        let std_sock = std::os::unix::net::UnixStream::from(fd);
        if std_sock.set_nonblocking(true).is_err() {
            return;
        }
        let sock = mio::net::UnixStream::from_std(std_sock);
        let core = &mut b.core;
        let slot = core.bus.add_link(inc, worker_id, sock);
        let Some(link) = core.bus.links.get_mut(slot) else {
            return;
        };
        if b.poll
            .registry()
            .register(&mut link.sock, Token(BUS_BASE + slot), Interest::READABLE)
            .is_err()
        {
            core.bus.remove_link(slot);
            return;
        }
        // The peer may have started after our clients connected: replay our own state.
        let mine: Vec<_> = core.reg.clients_of_worker(core.inc).collect();
        for c in mine {
            let Some(k) = core.local(c) else {
                continue;
            };
            let Some(info) = core.reg.get(c) else {
                continue;
            };
            let uid = info.uid.clone();
            let groups = info.groups.clone();
            let session = (!info.session.is_empty())
                .then(|| serde_json::to_vec(&info.session).unwrap_or_default());
            let bus = &mut core.bus;
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
            core.worker_id
        );
    }

    /// Handle this turn's bus link events, before any client event: what a peer changed
    /// before a client's request was sent is then applied before that request is handled
    /// (peers write their bus messages before their answers, see `Links::flush`).
    pub(super) fn events(&mut self, b: &mut Base, events: &Events) {
        for ev in events.iter() {
            let Token(t) = ev.token();
            if !(BUS_BASE..LISTENER_BASE).contains(&t) {
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.readable(b, t - BUS_BASE);
            }
            if ev.is_writable() {
                b.core.bus.mark_writable(t - BUS_BASE);
            }
        }
    }

    /// Read link `slot` next turn (a link adopted at a reload may hold bytes already).
    pub(super) fn reread(&mut self, slot: usize) {
        self.reread.push(slot);
    }

    /// Read the links the last turn left to read again.
    pub(super) fn continue_pending(&mut self, b: &mut Base) {
        for slot in std::mem::take(&mut self.reread) {
            self.readable(b, slot);
        }
    }

    /// Write what was queued on the links (deliveries to other nodes' workers may wait for
    /// the publish window: the loop wakes when they are due); a link that backed up or
    /// broke is dropped.
    pub(super) fn flush(&mut self, b: &mut Base) {
        let done = b.core.bus.flush(b.core.now);
        if let Some(at) = done.wake_at {
            b.core.timers.schedule(at, Due::BusHold);
        }
        let mut broken = done.broken;
        for (slot, wants_write) in done.interest {
            let Some(l) = b.core.bus.links.get_mut(slot) else {
                continue;
            };
            let interest = if wants_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(BUS_BASE + slot);
            if b.poll
                .registry()
                .reregister(&mut l.sock, token, interest)
                .is_err()
                && !broken.contains(&slot)
            {
                broken.push(slot);
            }
        }
        for slot in broken {
            drop_link(b, slot, "backed up or broken");
        }
    }

    /// Read and apply what link `slot` sent.
    fn readable(&mut self, b: &mut Base, slot: usize) {
        let mut total = 0;
        loop {
            let Some(l) = b.core.bus.links.get_mut(slot) else {
                return;
            };
            let n = match l.sock.read(&mut b.scratch) {
                Ok(0) => return drop_link(b, slot, "closed"),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return drop_link(b, slot, "failed"),
            };
            l.inbuf.extend_from_slice(&b.scratch[..n]);
            let from = l.inc;
            let mut buf = std::mem::take(&mut l.inbuf);
            let mut at = 0;
            let res = loop {
                match wire::decode(&buf[at..]) {
                    Ok(Some((m, used))) => {
                        at += used;
                        apply::apply(&mut b.core, from, m);
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            buf.drain(..at);
            if let Err(e) = res {
                crate::error!("bus link from {from:x}: {e}; dropping it");
                return drop_link(b, slot, "corrupt");
            }
            if let Some(l) = b.core.bus.links.get_mut(slot) {
                l.inbuf = buf;
            }
            close::apply(b);
            total += n;
            if total >= LINK_READ_BUDGET {
                self.reread.push(slot);
                return;
            }
        }
    }
}

/// Forget a peer: its link and, at once, all of its clients.
pub(super) fn drop_link(b: &mut Base, slot: usize, why: &str) {
    if let Some(mut l) = b.core.bus.remove_link(slot) {
        let _ = b.poll.registry().deregister(&mut l.sock);
        let (n, gone) = b.core.reg.drop_worker(l.inc);
        crate::info!(
            "bus link to worker {} {why}; forgot its {n} client(s)",
            l.worker_id
        );
        // A worker that stopped cleanly closed its clients and sent their departures
        // before its link ended, so what is left here was never closed: a crash.
        if !gone.is_empty() {
            guarded(&mut b.core, None, "on_peer_lost", |cx| {
                b.app.on_peer_lost(cx, &gone)
            });
        }
    }
}
