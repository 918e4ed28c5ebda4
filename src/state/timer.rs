//! Deadlines for the event loop: app timers (one-shot and repeating) and per-connection
//! deadlines (handshake, idle, close linger) in one binary heap.
//!
//! Cancelled or superseded entries are left in the heap and skipped when they surface
//! (lazy deletion), so cancel is O(1) and the heap never needs a search.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// What a heap entry wakes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    /// An app timer, by id.
    App(u64),
    /// A connection's deadline check, by slab slot and generation.
    Conn(u32, u32),
    /// Accepting was paused (EMFILE or the connection cap); try again.
    ResumeAccept,
    /// Give up on a graceful drain.
    DrainDeadline,
    /// The gateway heartbeat tick (`crate::gateway::heartbeat`).
    Heartbeat,
    /// A reload's hand-over stops waiting for the app to settle.
    HandOver,
    /// Deliveries held for other nodes' workers are due (`crate::gateway::bus::hold`).
    BusHold,
}

#[derive(Debug)]
struct AppTimer {
    interval: Option<Duration>,
    tag: u64,
}

/// The worker's timers.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, Due)>>,
    seq: u64,
    app: HashMap<u64, AppTimer>,
    next_app: u64,
}

impl Timers {
    /// Schedule `due` at `at`.
    pub(crate) fn schedule(&mut self, at: Instant, due: Due) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, due)));
    }

    /// Add an app timer firing after `after` (and then every `after` if `repeat`); returns its id.
    pub(crate) fn add_app(&mut self, now: Instant, after: Duration, repeat: bool, tag: u64) -> u64 {
        self.next_app += 1;
        let id = self.next_app;
        let after = after.max(Duration::from_millis(1));
        self.app.insert(
            id,
            AppTimer {
                interval: repeat.then_some(after),
                tag,
            },
        );
        self.schedule(now + after, Due::App(id));
        id
    }

    /// Cancel an app timer; returns whether it existed.
    pub(crate) fn cancel_app(&mut self, id: u64) -> bool {
        self.app.remove(&id).is_some()
    }

    /// Number of live app timers (for `status`).
    pub(crate) fn app_count(&self) -> usize {
        self.app.len()
    }

    /// When the earliest entry is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Pop the next entry due at or before `now`. For app timers returns `(id, tag)` through
    /// `Due::App` and re-arms repeating ones; cancelled app timers are skipped.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Due, u64)> {
        loop {
            let Reverse((at, _, due)) = *self.heap.peek()?;
            if at > now {
                return None;
            }
            self.heap.pop();
            match due {
                Due::App(id) => {
                    let Some(t) = self.app.get(&id) else { continue };
                    let tag = t.tag;
                    match t.interval {
                        Some(iv) => {
                            // Re-arm from the planned time, not from now, so a late loop does not drift;
                            // but never schedule in the past (a stalled loop fires once, not in a burst).
                            let next = (at + iv).max(now);
                            self.schedule(next, due);
                        }
                        None => {
                            self.app.remove(&id);
                        }
                    }
                    return Some((due, tag));
                }
                other => return Some((other, 0)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_repeat_and_cancel() {
        let mut t = Timers::default();
        let t0 = Instant::now();
        let a = t.add_app(t0, Duration::from_millis(10), false, 1);
        let b = t.add_app(t0, Duration::from_millis(5), true, 2);
        let c = t.add_app(t0, Duration::from_millis(7), false, 3);
        assert!(t.cancel_app(c));
        assert_eq!(t.pop_due(t0), None);
        let now = t0 + Duration::from_millis(11);
        assert_eq!(t.pop_due(now), Some((Due::App(b), 2)));
        assert_eq!(t.pop_due(now), Some((Due::App(a), 1)));
        assert_eq!(t.pop_due(now), Some((Due::App(b), 2)));
        assert_eq!(t.pop_due(now), None);
        assert_eq!(t.app_count(), 1);
    }
}
