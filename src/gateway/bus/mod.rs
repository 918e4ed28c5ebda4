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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::client_id::ConnId;
    use std::io::Read;
    use wire::Kind;

    const ME: u64 = 0x0100_0000_0000_0001;
    const SAME_NODE: u64 = 0x0100_0000_0000_0002;
    const OTHER_NODE: u64 = 0x0200_0000_0000_0001;
    const W: Duration = Duration::from_millis(2);

    /// What the peer end of a link has received so far, decoded.
    fn received(peer: &mut std::os::unix::net::UnixStream) -> Vec<String> {
        let mut buf = vec![0; 1 << 16];
        let mut got = Vec::new();
        loop {
            match peer.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((m, used)) = wire::decode(&got[at..]).unwrap() {
            out.push(match m {
                BusMsg::Hello { .. } => "hello".to_string(),
                BusMsg::ToClient { payload, .. } => String::from_utf8_lossy(payload).into(),
                BusMsg::Join(_, g) => format!("join {g}"),
                other => format!("{other:?}"),
            });
            at += used;
        }
        out
    }

    fn link(bus: &mut Bus, inc: u64) -> std::os::unix::net::UnixStream {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        theirs.set_nonblocking(true).unwrap();
        bus.add_link(inc, 0, UnixStream::from_std(ours));
        theirs
    }

    fn say(bus: &mut Bus, inc: u64, text: &str) {
        let m = BusMsg::ToClient {
            kind: Kind::Text,
            key: ConnId { slot: 1, gen: 1 },
            payload: text.as_bytes(),
        };
        assert!(bus.send(inc, &m));
    }

    #[test]
    fn deliveries_to_other_nodes_wait_for_the_window_in_order_and_a_join_takes_them_along() {
        let mut bus = Bus::new(ME, 0);
        bus.hold_other_nodes(1, W);
        let mut near = link(&mut bus, SAME_NODE);
        let mut far = link(&mut bus, OTHER_NODE);
        let t0 = Instant::now();
        // The hellos are not deliveries: out at once, on both links.
        let f = bus.flush(t0);
        assert!(f.broken.is_empty() && f.wake_at.is_none());
        assert_eq!(received(&mut near), ["hello"]);
        assert_eq!(received(&mut far), ["hello"]);
        // A window opened with that release: deliveries to the other node wait, the loop is
        // told when to come back; the same node's link is written at once.
        say(&mut bus, OTHER_NODE, "a");
        say(&mut bus, SAME_NODE, "n");
        let f = bus.flush(t0 + W / 4);
        assert_eq!(f.wake_at, Some(t0 + W));
        assert_eq!(received(&mut near), ["n"]);
        assert!(received(&mut far).is_empty());
        say(&mut bus, OTHER_NODE, "b");
        assert_eq!(bus.flush(t0 + W / 2).wake_at, None);
        assert!(received(&mut far).is_empty());
        // At the window's end, all of it, in order.
        assert_eq!(bus.flush(t0 + W).wake_at, None);
        assert_eq!(received(&mut far), ["a", "b"]);
        // Within the next window a join is not held, and takes the deliveries before it.
        say(&mut bus, OTHER_NODE, "c");
        assert!(bus.flush(t0 + W + W / 4).wake_at.is_some());
        say(&mut bus, OTHER_NODE, "d");
        bus.broadcast(&BusMsg::Join(ConnId { slot: 2, gen: 1 }, "room"));
        say(&mut bus, OTHER_NODE, "e");
        bus.flush(t0 + W + W / 2);
        assert_eq!(received(&mut far), ["c", "d", "join room", "e"]);
        assert_eq!(received(&mut near), ["join room"]);
        // A stop releases what is held.
        say(&mut bus, OTHER_NODE, "f");
        bus.flush(t0 + W + W * 3 / 4);
        assert!(received(&mut far).is_empty());
        bus.release_held();
        bus.flush(t0 + W + W * 3 / 4);
        assert_eq!(received(&mut far), ["f"]);
    }

    #[test]
    fn without_a_window_nothing_is_held() {
        let mut bus = Bus::new(ME, 0);
        bus.hold_other_nodes(1, Duration::ZERO);
        let mut far = link(&mut bus, OTHER_NODE);
        let t0 = Instant::now();
        bus.flush(t0);
        say(&mut bus, OTHER_NODE, "a");
        assert_eq!(bus.flush(t0).wake_at, None);
        assert_eq!(received(&mut far), ["hello", "a"]);
    }

    #[test]
    fn writability_is_asked_for_only_while_a_write_waits() {
        let mut bus = Bus::new(ME, 0);
        let mut peer = link(&mut bus, SAME_NODE);
        let t0 = Instant::now();
        assert!(bus.flush(t0).interest.is_empty());
        // Fill the socket: the flush leaves bytes queued and asks to hear of room.
        let big = vec![b'x'; 1 << 20];
        let m = BusMsg::ToClient {
            kind: Kind::Binary,
            key: ConnId { slot: 1, gen: 1 },
            payload: &big,
        };
        bus.send(SAME_NODE, &m);
        let slot = bus.by_inc[&SAME_NODE];
        assert_eq!(bus.flush(t0).interest, [(slot, true)]);
        // The peer reads; once the rest is out the interest is dropped again.
        let mut buf = vec![0; 1 << 16];
        let mut last = Vec::new();
        for _ in 0..100_000 {
            loop {
                match peer.read(&mut buf) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            bus.mark_writable(slot);
            let f = bus.flush(t0);
            if !f.interest.is_empty() {
                last = f.interest;
            }
            if bus.links[slot].out.is_empty() {
                break;
            }
        }
        assert!(bus.links[slot].out.is_empty());
        assert_eq!(last, [(slot, false)]);
        assert!(!bus.links[slot].wants_write);
    }
}
