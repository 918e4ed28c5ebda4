//! A connection's deadline timer: the handshake and linger bounds, the app's login deadline
//! and the idle timeout, with one timer per connection armed for the earliest of them.

use crate::connection::ConnState;
use crate::gateway::client_id::ConnId;
use crate::protocol::websocket::close as ws_close;
use crate::state::{CloseHow, Core};
use std::time::Instant;

/// The deadline timer of the connection at `slot` (generation `gen`) fired: close it if one of
/// its deadlines has passed, else arm the timer for the next one.
pub(super) fn conn(core: &mut Core, slot: usize, gen: u32) {
    let now = core.now;
    let idle = core.limits.idle_timeout;
    let Some(c) = core.conns.get_mut(slot).filter(|c| c.gen == gen) else {
        return;
    };
    match c.timer_at {
        // An earlier check was superseded by a later one... or this is the stale later one.
        Some(t) if t > now => return,
        _ => c.timer_at = None,
    }
    let id = ConnId {
        slot: slot as u32,
        gen,
    };
    match c.state {
        ConnState::Handshake | ConnState::Closing | ConnState::Lingering => match c.deadline {
            Some(d) if d <= now => core.request_close(id, CloseHow::Now),
            Some(d) => core.arm_conn_timer(slot, d),
            None => {}
        },
        ConnState::Open => {
            // The login deadline (until the app authenticates the client), then the idle
            // one; the earlier pending one is armed next.
            let mut next = None;
            if let Some(d) = c.deadline {
                if d <= now {
                    // Not logged: a flood of such clients would flood the log too.
                    core.request_close(id, CloseHow::Graceful(ws_close::POLICY));
                    return;
                }
                next = Some(d);
            }
            if !idle.is_zero() {
                let due = c.last_active + idle;
                if due <= now {
                    core.request_close(id, CloseHow::Graceful(ws_close::GOING_AWAY));
                    return;
                }
                next = Some(next.map_or(due, |n: Instant| n.min(due)));
            }
            if let Some(at) = next {
                core.arm_conn_timer(slot, at);
            }
        }
    }
}
