//! Links between workers: one unix stream socket per pair of workers, handed out by the
//! master, carrying [`wire::BusMsg`] frames. One link per pair keeps every message from one
//! worker to another in order.

pub mod wire;

use crate::connection::buffer::{Flush, OutBuf};
use mio::net::UnixStream;
use slab::Slab;
use std::collections::HashMap;
use wire::BusMsg;

/// Bytes queued to one peer before the link is considered stuck and dropped (the peer is
/// then treated as dead; the master restarts it if it really is).
pub const MAX_LINK_BUFFER: usize = 512 * 1024 * 1024;

/// One link to another worker.
#[derive(Debug)]
pub struct Link {
    /// The peer's incarnation.
    pub inc: u64,
    /// The peer's worker slot.
    pub worker_id: usize,
    /// The socket.
    pub sock: UnixStream,
    /// Bytes received, not yet decoded.
    pub inbuf: Vec<u8>,
    /// Bytes to send.
    pub out: OutBuf,
    /// In the bus dirty list.
    pub in_dirty: bool,
}

/// All links of this worker.
#[derive(Debug)]
pub struct Bus {
    inc: u64,
    worker_id: usize,
    /// Links by slot (the poll token is derived from the slot).
    pub links: Slab<Link>,
    by_inc: HashMap<u64, usize>,
    dirty: Vec<usize>,
    scratch: Vec<u8>,
}

impl Bus {
    /// No links yet.
    pub fn new(inc: u64, worker_id: usize) -> Bus {
        Bus {
            inc,
            worker_id,
            links: Slab::new(),
            by_inc: HashMap::new(),
            dirty: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Add a link to worker `inc`; returns its slot. The caller registers the socket.
    pub fn add_link(&mut self, inc: u64, worker_id: usize, sock: UnixStream) -> usize {
        let slot = self.links.insert(Link {
            inc,
            worker_id,
            sock,
            inbuf: Vec::new(),
            out: OutBuf::default(),
            in_dirty: false,
        });
        if let Some(old) = self.by_inc.insert(inc, slot) {
            // The master never sends two links for one peer; if it did, keep the newer.
            self.links.try_remove(old);
        }
        let hello = BusMsg::Hello {
            inc: self.inc,
            worker_id: self.worker_id as u16,
        };
        self.send_slot(slot, &hello);
        slot
    }

    /// Take over a link another process of this worker's line had (a reload's hand-over):
    /// the peer already knows who speaks, so no `Hello`; `inbuf` and `unsent` are what that
    /// process had read but not decoded and queued but not written. Returns its slot; the
    /// caller registers the socket.
    pub fn adopt_link(
        &mut self,
        inc: u64,
        worker_id: usize,
        sock: UnixStream,
        inbuf: Vec<u8>,
        unsent: &[u8],
    ) -> usize {
        let mut out = OutBuf::default();
        if !unsent.is_empty() {
            out.push(unsent);
        }
        let slot = self.links.insert(Link {
            inc,
            worker_id,
            sock,
            inbuf,
            out,
            in_dirty: false,
        });
        if let Some(old) = self.by_inc.insert(inc, slot) {
            self.links.try_remove(old);
        }
        if !self.links[slot].out.is_empty() {
            self.links[slot].in_dirty = true;
            self.dirty.push(slot);
        }
        slot
    }

    /// Take on another incarnation: a successor adopting its predecessor's clients keeps
    /// their ids, so it speaks as the predecessor did.
    pub fn set_inc(&mut self, inc: u64) {
        self.inc = inc;
    }

    /// Remove a link; returns it.
    pub fn remove_link(&mut self, slot: usize) -> Option<Link> {
        let l = self.links.try_remove(slot)?;
        if self.by_inc.get(&l.inc) == Some(&slot) {
            self.by_inc.remove(&l.inc);
        }
        Some(l)
    }

    /// Whether a link to `inc` exists.
    pub fn has(&self, inc: u64) -> bool {
        self.by_inc.contains_key(&inc)
    }

    /// Incarnations of every linked peer.
    pub fn peers(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_inc.keys().copied()
    }

    fn send_slot(&mut self, slot: usize, m: &BusMsg<'_>) {
        let Some(l) = self.links.get_mut(slot) else {
            return;
        };
        self.scratch.clear();
        wire::encode(m, &mut self.scratch);
        l.out.push(&self.scratch);
        if !l.in_dirty {
            l.in_dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Send to the worker `inc`; false if there is no link to it.
    pub fn send(&mut self, inc: u64, m: &BusMsg<'_>) -> bool {
        match self.by_inc.get(&inc) {
            Some(&slot) => {
                self.send_slot(slot, m);
                true
            }
            None => false,
        }
    }

    /// Send to every peer, encoding once.
    pub fn broadcast(&mut self, m: &BusMsg<'_>) {
        if self.links.is_empty() {
            return;
        }
        self.scratch.clear();
        wire::encode(m, &mut self.scratch);
        for (slot, l) in self.links.iter_mut() {
            l.out.push(&self.scratch);
            if !l.in_dirty {
                l.in_dirty = true;
                self.dirty.push(slot);
            }
        }
    }

    /// Write queued frames; returns links that failed or are hopelessly backed up.
    pub fn flush(&mut self) -> Vec<usize> {
        let mut broken = Vec::new();
        for slot in std::mem::take(&mut self.dirty) {
            let Some(l) = self.links.get_mut(slot) else {
                continue;
            };
            l.in_dirty = false;
            match l.out.flush_to(&mut l.sock, &[]) {
                Ok((_, Flush::Done)) => {}
                Ok((_, Flush::Blocked)) => {
                    if l.out.len() > MAX_LINK_BUFFER {
                        broken.push(slot);
                    }
                }
                Err(_) => broken.push(slot),
            }
        }
        broken
    }

    /// A writable event on a link: flush it at the end of the turn.
    pub fn mark_writable(&mut self, slot: usize) {
        if let Some(l) = self.links.get_mut(slot) {
            if !l.out.is_empty() && !l.in_dirty {
                l.in_dirty = true;
                self.dirty.push(slot);
            }
        }
    }
}
