//! Closing connections: the app's `on_close`, the cluster-wide `Down`, the WebSocket close
//! handshake and the linger before the socket goes; closing many at once when stopping.

use super::input::guarded;
use super::Base;
use crate::connection::{ConnState, Framing};
use crate::gateway::client_id::ConnId;
use crate::protocol::websocket::{close as ws_close, frame as ws_frame};
use crate::state::CloseHow;
use std::time::Duration;

/// How long a closing connection may take to read our close and hang up.
const LINGER: Duration = Duration::from_secs(2);
/// How long a stopping worker waits for the request of a connection it accepted just before.
const REQUEST_GRACE: Duration = Duration::from_millis(500);

/// Carry out the closes requested during the last event (and those they cause).
pub(super) fn apply(b: &mut Base) {
    while let Some((id, how)) = b.core.pending_close.pop() {
        begin(b, id, how);
    }
}

fn begin(b: &mut Base, id: ConnId, how: CloseHow) {
    let Some(c) = b.core.get_mut(id) else {
        return;
    };
    if c.app_connected {
        c.app_connected = false;
        let cid = b.core.client_id(id);
        guarded(&mut b.core, None, "on_close", |cx| b.app.on_close(cx, cid));
        b.core.local_down(id);
    }
    let now = b.core.now;
    let Some(c) = b.core.get_mut(id) else {
        return;
    };
    match how {
        CloseHow::Now => drop_conn(b, id.index()),
        CloseHow::Graceful(code) => {
            if matches!(c.state, ConnState::Closing | ConnState::Lingering) {
                return;
            }
            let ws = c.framing == Framing::Ws && c.state == ConnState::Open;
            c.state = ConnState::Closing;
            c.deadline = Some(now + LINGER);
            if ws {
                let mut frame = Vec::with_capacity(4);
                ws_frame::encode_close(&mut frame, code, "");
                // The close frame goes out even past the send bound: it is tiny and final.
                c.out.push(&frame);
            }
            let slot = id.index();
            if !c.in_dirty {
                c.in_dirty = true;
                b.core.dirty.push(slot);
            }
            b.core.arm_conn_timer(slot, now + LINGER);
        }
    }
}

/// Forget the connection at `slot` and close its socket. Accepting paused at the
/// connection cap resumes from its own timer, not from here: a burst of closes then
/// costs one accept pass instead of one per close.
pub(super) fn drop_conn(b: &mut Base, slot: usize) {
    if let Some(mut c) = b.core.conns.try_remove(slot) {
        let _ = b.poll.registry().deregister(&mut c.stream);
        let tls = c.tls.as_ref().map_or(0, |t| t.counted());
        b.buffered_input = b.buffered_input.saturating_sub(c.in_buf.capacity() + tls);
        b.peers.release(c.remote.ip());
    }
}

/// Close every connection (stop or drain deadline).
pub(super) fn all(b: &mut Base) {
    // Set by the stop order (a drain deadline comes after one).
    let code = b.core.stopping.unwrap_or(ws_close::GOING_AWAY);
    let ids: Vec<ConnId> = b
        .core
        .conns
        .iter()
        .map(|(s, c)| ConnId {
            slot: s as u32,
            gen: c.gen,
        })
        .collect();
    let grace = b.core.now + REQUEST_GRACE;
    for id in ids {
        let Some(c) = b.core.get_mut(id) else {
            continue;
        };
        if c.idle_http() {
            b.core.request_close(id, CloseHow::Now);
        } else if c.state == ConnState::Handshake {
            // Accepted, its request not answered yet: a client that connected before the
            // stop gets an answer (an HTTP response with `Connection: close`, or its
            // upgrade and then the close code), not a reset. A client that sends nothing
            // is dropped soon, so it cannot hold the stop up.
            let by = c.deadline.map_or(grace, |d| d.min(grace));
            c.deadline = Some(by);
            b.core.arm_conn_timer(id.index(), by);
        } else {
            b.core.request_close(id, CloseHow::Graceful(code));
        }
    }
    apply(b);
}

/// Close the HTTP connections waiting for a next request that may never come (a
/// browser's keep-alive): a draining worker would otherwise wait on them until its
/// deadline, and a stopping one linger on them.
pub(super) fn idle_http(b: &mut Base) {
    let idle: Vec<ConnId> = b
        .core
        .conns
        .iter()
        .filter(|(_, c)| c.idle_http())
        .map(|(s, c)| ConnId {
            slot: s as u32,
            gen: c.gen,
        })
        .collect();
    for id in idle {
        b.core.request_close(id, CloseHow::Now);
    }
    apply(b);
}

/// Before a reload's hand-over: close with 1012 every client that cannot move to the
/// successor ([`crate::connection::Conn::movable`]) and is not waiting for an app answer.
pub(super) fn unmovable(b: &mut Base) {
    let ids: Vec<ConnId> = b
        .core
        .conns
        .iter()
        .filter(|(_, c)| !c.movable() && !c.input.awaiting_app())
        .map(|(s, c)| ConnId {
            slot: s as u32,
            gen: c.gen,
        })
        .collect();
    for id in ids {
        b.core
            .request_close(id, CloseHow::Graceful(ws_close::SERVICE_RESTART));
    }
    apply(b);
}
