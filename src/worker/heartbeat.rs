//! Server-side heartbeats with GatewayWorker's meaning (`pingInterval`,
//! `pingNotResponseLimit`, `pingData`), plus optional WebSocket ping frames.
//!
//! One repeating tick per worker, every `ping_interval` (every half interval when a limit is
//! set, as GatewayWorker does, so a silent client is closed close to `limit × interval`). On a
//! tick each local client that has sent nothing for a whole interval gets `ping_data` (and a
//! ping frame with `ws_ping`), at most once per interval; with a limit, a client silent for
//! `limit × interval` is closed and its `on_close` runs.
//!
//! Unlike GatewayWorker, *any* bytes from the client count as activity, WebSocket pong frames
//! included: the loop stamps `last_active` on every read, so a browser that answers our ping
//! frames (all do, automatically) is never dropped as silent.
//!
//! Cost: a tick walks the worker's own connections once, O(local connections) per tick with
//! no allocation; at GatewayWorker-like intervals (seconds) that is negligible next to the
//! traffic those connections make.

use crate::config::GatewayConfig;
use crate::connection::{ConnState, Framing};
use crate::gateway::client_id::ConnId;
use crate::protocol::websocket::close as ws_close;
use crate::protocol::websocket::frame::{self as ws_frame, OpCode};
use crate::protocol::Payload;
use crate::state::{CloseHow, Core, Encoded};
use std::time::{Duration, Instant};

/// Heartbeat settings and the per-connection memory of the last ping.
#[derive(Debug)]
pub(super) struct Heartbeat {
    interval: Duration,
    limit: u32,
    data: String,
    ws_ping: bool,
    /// When each slot's occupant (by generation) was last pinged; indexed by slab slot so a
    /// tick needs no hashing and a reused slot is recognised by its generation.
    pinged: Vec<Option<(u32, Instant)>>,
}

impl Heartbeat {
    /// Heartbeats from the config; `None` when `ping_interval` is 0 (off).
    pub(super) fn from_config(g: &GatewayConfig) -> Option<Heartbeat> {
        if g.ping_interval.is_zero() {
            return None;
        }
        Some(Heartbeat {
            interval: g.ping_interval,
            limit: g.ping_not_response_limit,
            data: g.ping_data.clone(),
            ws_ping: g.ws_ping,
            pinged: Vec::new(),
        })
    }

    /// Time between ticks: the interval, or half of it when silent clients are closed.
    pub(super) fn period(&self) -> Duration {
        if self.limit > 0 {
            self.interval / 2
        } else {
            self.interval
        }
        .max(Duration::from_millis(1))
    }

    /// One tick: ping idle clients, close silent ones (closes are queued on the core).
    pub(super) fn tick(&mut self, core: &mut Core) {
        let now = core.now;
        let silent_limit = (self.limit > 0).then(|| self.interval * self.limit);
        // Ticks come at a fixed period, so "a whole interval since the last ping" must allow
        // for scheduling jitter of up to half a period or every other ping would be skipped.
        let reping = self.interval.saturating_sub(self.period() / 2);
        let sends_something = !self.data.is_empty() || self.ws_ping;
        if self.pinged.len() < core.conns.capacity() {
            self.pinged.resize(core.conns.capacity(), None);
        }
        let enc = Encoded::new(Payload::Text(&self.data));
        let mut ping_head = [0u8; 10];
        let ping_head_len = ws_frame::server_header(OpCode::Ping, 0, &mut ping_head);
        // Collect first: queueing needs `&mut core` while iterating the slab borrows it.
        let mut slots = std::mem::take(&mut core.slots);
        for (slot, c) in core.conns.iter() {
            if !c.app_connected || c.state != ConnState::Open {
                continue;
            }
            let idle = now.saturating_duration_since(c.last_active);
            if silent_limit.is_some_and(|l| idle >= l) {
                core.pending_close.push((
                    ConnId {
                        slot: slot as u32,
                        gen: c.gen,
                    },
                    CloseHow::Graceful(ws_close::GOING_AWAY),
                ));
                continue;
            }
            if !sends_something || idle < self.interval {
                continue;
            }
            let last = match self.pinged.get(slot).copied().flatten() {
                Some((gen, at)) if gen == c.gen && at > c.last_active => Some(at),
                _ => None,
            };
            if last.is_some_and(|at| now.saturating_duration_since(at) < reping) {
                continue;
            }
            if let Some(p) = self.pinged.get_mut(slot) {
                *p = Some((c.gen, now));
            }
            slots.push(slot);
        }
        for &slot in &slots {
            let ws = core
                .conns
                .get(slot)
                .is_some_and(|c| c.framing == Framing::Ws);
            if !self.data.is_empty() {
                enc.queue(core, slot);
            }
            if self.ws_ping && ws {
                core.queue_raw(slot, &ping_head[..ping_head_len], &[]);
            }
        }
        slots.clear();
        core.slots = slots;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_halves_with_a_limit() {
        let mut g = GatewayConfig::default();
        assert!(Heartbeat::from_config(&g).is_none());
        g.ping_interval = Duration::from_secs(10);
        let h = Heartbeat::from_config(&g).unwrap();
        assert_eq!(h.period(), Duration::from_secs(10));
        g.ping_not_response_limit = 2;
        let h = Heartbeat::from_config(&g).unwrap();
        assert_eq!(h.period(), Duration::from_secs(5));
    }
}
