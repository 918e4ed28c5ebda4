//! Links between workers: one unix stream socket per pair of workers, handed out by the
//! master, carrying [`wire::BusMsg`] frames. One link per pair keeps every message from one
//! worker to another in order.

pub mod hold;
pub mod wire;

use crate::connection::buffer::{Flush, OutBuf};
use hold::{Hold, Turn};
use mio::net::UnixStream;
use slab::Slab;
use std::collections::HashMap;
use std::time::{Duration, Instant};
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
    /// To a worker of another node: its deliveries wait for the publish window ([`Hold`]).
    pub held: bool,
    /// Registered for writability: only while `out` waits for room (see [`Flushed::interest`]).
    pub wants_write: bool,
}

/// What [`Bus::flush`] did.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Links that failed or are hopelessly backed up.
    pub broken: Vec<usize>,
    /// Deliveries are held: wake the loop then to release them.
    pub wake_at: Option<Instant>,
    /// Links whose registration must change: `true` to be told when there is room again (a
    /// write left bytes queued), `false` once all is written. A link registered for
    /// writability all the time wakes the loop each time the peer reads.
    pub interest: Vec<(usize, bool)>,
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
    /// The publish window on links to other nodes (None: nothing is held).
    hold: Option<Hold>,
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
            hold: None,
        }
    }

    /// In a cluster: hold deliveries to workers of nodes other than `node` for up to `window`
    /// (see [`hold`]). Set before any link is added.
    pub fn hold_other_nodes(&mut self, node: u8, window: Duration) {
        if !window.is_zero() {
            self.hold = Some(Hold::new(node, window));
        }
    }

    fn is_held(&self, inc: u64) -> bool {
        self.hold.as_ref().is_some_and(|h| h.applies_to(inc))
    }

    /// Write everything held at the next flush, window or not (a worker about to stop).
    pub fn release_held(&mut self) {
        if let Some(h) = &mut self.hold {
            h.force();
        }
    }

    /// Add a link to worker `inc`; returns its slot. The caller registers the socket.
    pub fn add_link(&mut self, inc: u64, worker_id: usize, sock: UnixStream) -> usize {
        let held = self.is_held(inc);
        let slot = self.links.insert(Link {
            inc,
            worker_id,
            sock,
            inbuf: Vec::new(),
            out: OutBuf::default(),
            in_dirty: false,
            held,
            wants_write: false,
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
        let held = self.is_held(inc);
        let slot = self.links.insert(Link {
            inc,
            worker_id,
            sock,
            inbuf,
            out,
            in_dirty: false,
            held,
            wants_write: false,
        });
        if let Some(old) = self.by_inc.insert(inc, slot) {
            self.links.try_remove(old);
        }
        if !self.links[slot].out.is_empty() {
            self.links[slot].in_dirty = true;
            self.dirty.push(slot);
            // What the predecessor held goes out at once; its window died with it.
            self.release_held();
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
        if l.held {
            if let Some(h) = &mut self.hold {
                h.queued(&self.scratch);
            }
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
            if l.held {
                if let Some(h) = &mut self.hold {
                    h.queued(&self.scratch);
                }
            }
        }
    }

    /// End of a turn: write queued frames, except deliveries to other nodes' workers while
    /// their window runs (they stay queued, in order, and their links stay dirty).
    pub fn flush(&mut self, now: Instant) -> Flushed {
        let turn = self.hold.as_ref().map_or(Turn::Release, |h| h.turn(now));
        let mut broken = Vec::new();
        let mut interest = Vec::new();
        let (mut wrote, mut kept) = (false, false);
        let links = &mut self.links;
        self.dirty.retain(|&slot| {
            let Some(l) = links.get_mut(slot) else {
                return false;
            };
            if l.held {
                if turn == Turn::Keep {
                    kept = true;
                    return true;
                }
                wrote = true;
            }
            l.in_dirty = false;
            let blocked = match l.out.flush_to(&mut l.sock, &[]) {
                Ok((_, Flush::Done)) => false,
                Ok((_, Flush::Blocked)) => {
                    if l.out.len() > MAX_LINK_BUFFER {
                        broken.push(slot);
                    }
                    true
                }
                Err(_) => {
                    broken.push(slot);
                    return false;
                }
            };
            if blocked != l.wants_write {
                l.wants_write = blocked;
                interest.push((slot, blocked));
            }
            false
        });
        let wake_at = self
            .hold
            .as_mut()
            .and_then(|h| h.turn_done(turn, now, wrote, kept));
        Flushed {
            broken,
            wake_at,
            interest,
        }
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
