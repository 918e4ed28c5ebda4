//! Closing connections: the app's `on_close`, the cluster-wide `Down`, the WebSocket close
//! handshake and the linger before the socket goes.

use super::*;

impl Worker {
    /// Carry out the closes requested during the last event (and those they cause).
    pub(super) fn apply_closes(&mut self) {
        while let Some((id, how)) = self.core.pending_close.pop() {
            self.begin_close(id, how);
        }
    }

    pub(super) fn begin_close(&mut self, id: ConnId, how: CloseHow) {
        let Some(c) = self.core.get_mut(id) else {
            return;
        };
        if c.app_connected {
            c.app_connected = false;
            let cid = self.core.client_id(id);
            guarded(&mut self.core, None, "on_close", |cx| {
                self.app.on_close(cx, cid)
            });
            self.core.local_down(id);
        }
        let now = self.core.now;
        let Some(c) = self.core.get_mut(id) else {
            return;
        };
        match how {
            CloseHow::Now => self.drop_conn(id.index()),
            CloseHow::Graceful(code) => {
                if matches!(c.state, ConnState::Closing | ConnState::Lingering) {
                    return;
                }
                let ws = c.framing == Framing::Ws && c.state == ConnState::Open;
                c.state = ConnState::Closing;
                c.deadline = Some(now + LINGER);
                let slot = id.index();
                if ws {
                    let mut frame = Vec::with_capacity(4);
                    ws_frame::encode_close(&mut frame, code, "");
                    // The close frame goes out even past the send bound: it is tiny and final.
                    if let Some(c) = self.core.conns.get_mut(slot) {
                        c.out.push(&frame);
                    }
                }
                if let Some(c) = self.core.conns.get_mut(slot) {
                    if !c.in_dirty {
                        c.in_dirty = true;
                        self.core.dirty.push(slot);
                    }
                }
                self.core.arm_conn_timer(slot, self.core.now + LINGER);
            }
        }
    }

    /// Forget the connection at `slot` and close its socket. Accepting paused at the
    /// connection cap resumes from its own timer, not from here: a burst of closes then
    /// costs one accept pass instead of one per close.
    pub(super) fn drop_conn(&mut self, slot: usize) {
        if let Some(mut c) = self.core.conns.try_remove(slot) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.buffered_input = self.buffered_input.saturating_sub(c.in_buf.capacity());
            self.peers.release(c.remote.ip());
        }
    }
}
