//! The publish window, held in the worker: deliveries queued on links to other nodes' workers
//! wait up to `window` so that the node's relay (the other end of those links) is woken once
//! per window, not once per event-loop turn. Deliveries only: a change of state (a client up
//! or down, a join, a bind, a session, a command) releases everything held at the end of the
//! turn, because other nodes route their sends by that state.
//!
//! The rule, per worker (one window for all its links to other nodes):
//! - nothing released within the last `window`: what is queued goes out this turn (a trickle
//!   pays no delay);
//! - else it waits until `window` after the last release, when all of it goes out at once;
//! - a frame that is not a delivery, or more than [`HOLD_MAX`] bytes held, or a stop or a
//!   hand-over, releases everything at the end of the turn.
//!
//! Frames are never reordered: a link's bytes are one queue, the hold only delays its write.

use std::time::{Duration, Instant};

/// Bytes held across the links before they go out without waiting for the window.
pub const HOLD_MAX: usize = 256 * 1024;

/// Where the hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing released within the last window: deliveries go out at the end of this turn.
    Idle,
    /// Deliveries were last released at `at`: what is queued waits until `at + window`.
    /// `armed`: the loop has a timer for that moment.
    Window { at: Instant, armed: bool },
    /// Release at the end of this turn, window or not.
    Due,
}

/// The hold on links to other nodes' workers (absent outside a cluster or with a zero window).
#[derive(Debug)]
pub struct Hold {
    /// This worker's node: links to workers of other nodes are held.
    node: u8,
    window: Duration,
    state: State,
    /// Bytes queued on held links since the last release.
    bytes: usize,
}

/// What the end of a turn does with the held links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Write them now.
    Release,
    /// Keep them queued.
    Keep,
}

/// The node an incarnation belongs to: its top byte (a cluster's incarnations carry it).
pub fn node_of(inc: u64) -> u8 {
    (inc >> 56) as u8
}

impl Hold {
    /// Hold deliveries to workers of nodes other than `node` for up to `window`.
    pub fn new(node: u8, window: Duration) -> Hold {
        Hold {
            node,
            window,
            state: State::Idle,
            bytes: 0,
        }
    }

    /// Whether links to worker `inc` are held (it is on another node).
    pub fn applies_to(&self, inc: u64) -> bool {
        node_of(inc) != self.node
    }

    /// `frame` (one whole bus frame) was queued on a held link.
    pub fn queued(&mut self, frame: &[u8]) {
        self.bytes += frame.len();
        if !super::wire::is_delivery(frame) || self.bytes >= HOLD_MAX {
            self.state = State::Due;
        }
    }

    /// Release everything at the end of this turn (a stop, bytes adopted at a hand-over).
    pub fn force(&mut self) {
        self.state = State::Due;
    }

    /// At the end of a turn, before writing: what to do with the held links.
    pub fn turn(&self, now: Instant) -> Turn {
        match self.state {
            State::Window { at, .. } if now < at + self.window => Turn::Keep,
            _ => Turn::Release,
        }
    }

    /// After the writes of a turn that decided `turn`: `wrote` whether a held link was
    /// written, `kept` whether one still waits. Returns when the loop must wake to release
    /// what waits (once per window; a timer that fires after an earlier release is harmless).
    pub fn turn_done(
        &mut self,
        turn: Turn,
        now: Instant,
        wrote: bool,
        kept: bool,
    ) -> Option<Instant> {
        match turn {
            Turn::Release => {
                self.bytes = 0;
                self.state = if wrote {
                    State::Window {
                        at: now,
                        armed: false,
                    }
                } else {
                    State::Idle
                };
                None
            }
            Turn::Keep => match &mut self.state {
                State::Window { at, armed } if kept && !*armed => {
                    *armed = true;
                    Some(*at + self.window)
                }
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::bus::wire::{encode, BusMsg, Kind};
    use crate::gateway::client_id::ConnId;

    const W: Duration = Duration::from_millis(2);

    fn frame(m: &BusMsg<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        encode(m, &mut v);
        v
    }

    fn delivery() -> Vec<u8> {
        frame(&BusMsg::ToClient {
            kind: Kind::Text,
            key: ConnId { slot: 1, gen: 1 },
            payload: b"hi",
        })
    }

    #[test]
    fn only_links_to_other_nodes_are_held() {
        let h = Hold::new(2, W);
        assert!(!h.applies_to(0x0200_0000_0000_0001));
        assert!(h.applies_to(0x0100_0000_0000_0001));
        assert!(h.applies_to(0x0300_0000_0000_0001));
    }

    #[test]
    fn a_trickle_goes_out_at_once_a_stream_once_per_window() {
        let t0 = Instant::now();
        let mut h = Hold::new(1, W);
        // Quiet before: the first delivery goes out this turn.
        h.queued(&delivery());
        assert_eq!(h.turn(t0), Turn::Release);
        assert_eq!(h.turn_done(Turn::Release, t0, true, false), None);
        // Within the window: held, and the loop is told when to wake, once.
        let t1 = t0 + W / 4;
        h.queued(&delivery());
        assert_eq!(h.turn(t1), Turn::Keep);
        assert_eq!(h.turn_done(Turn::Keep, t1, false, true), Some(t0 + W));
        let t2 = t0 + W / 2;
        h.queued(&delivery());
        assert_eq!(h.turn(t2), Turn::Keep);
        assert_eq!(h.turn_done(Turn::Keep, t2, false, true), None);
        // At the window's end all of it goes out, and a new window starts.
        let t3 = t0 + W;
        assert_eq!(h.turn(t3), Turn::Release);
        assert_eq!(h.turn_done(Turn::Release, t3, true, false), None);
        h.queued(&delivery());
        assert_eq!(h.turn(t3 + W / 2), Turn::Keep);
        // A window that passes with nothing sent leaves the hold idle: no delay next time.
        let t4 = t3 + W * 3;
        assert_eq!(h.turn(t4), Turn::Release);
        h.turn_done(Turn::Release, t4, true, false);
        assert_eq!(h.turn(t4 + W * 2), Turn::Release);
        h.turn_done(Turn::Release, t4 + W * 2, false, false);
        assert_eq!(h.state, State::Idle);
    }

    #[test]
    fn a_change_of_state_releases_what_is_held() {
        let key = ConnId { slot: 3, gen: 7 };
        let changes = [
            frame(&BusMsg::Up(key)),
            frame(&BusMsg::Down(key)),
            frame(&BusMsg::Join(key, "room")),
            frame(&BusMsg::Leave(key, "room")),
            frame(&BusMsg::Bind(key, "u1")),
            frame(&BusMsg::Session(key, b"{}")),
            frame(&BusMsg::Hello {
                inc: 1,
                worker_id: 0,
            }),
        ];
        for change in changes {
            let t0 = Instant::now();
            let mut h = Hold::new(1, W);
            h.queued(&delivery());
            h.turn_done(Turn::Release, t0, true, false);
            h.queued(&delivery());
            assert_eq!(h.turn(t0 + W / 4), Turn::Keep);
            h.queued(&change);
            assert_eq!(h.turn(t0 + W / 4), Turn::Release, "{change:?}");
        }
    }

    #[test]
    fn a_full_hold_and_a_stop_release_at_once() {
        let t0 = Instant::now();
        let mut h = Hold::new(1, W);
        h.queued(&delivery());
        h.turn_done(Turn::Release, t0, true, false);
        let d = delivery();
        let mut n = 0;
        while h.turn(t0) == Turn::Keep || n == 0 {
            h.queued(&d);
            n += 1;
        }
        assert_eq!(n, HOLD_MAX.div_ceil(d.len()));
        h.turn_done(Turn::Release, t0, true, false);
        h.queued(&d);
        assert_eq!(h.turn(t0), Turn::Keep);
        h.force();
        assert_eq!(h.turn(t0), Turn::Release);
    }
}
