//! Writing connections: each dirty connection's queued output once per turn, back-pressure
//! on a client that does not read its answers, and the end of a close's flush.

use super::read::Reader;
use crate::connection::buffer::Flush;
use crate::connection::ConnState;
use crate::gateway::client_id::ConnId;
use crate::state::{CloseHow, Core};
use crate::tls::session::Scratch;

/// Write every dirty connection's queued output once (TLS records made in `scratch`); a
/// connection whose reads resume is handed to `reader` to be read next turn.
pub(super) fn conns(core: &mut Core, reader: &mut Reader, scratch: &mut Scratch) {
    let high = core.limits.max_send_buffer / 2;
    let low = core.limits.max_send_buffer / 8;
    let dirty = std::mem::take(&mut core.dirty);
    for &slot in &dirty {
        let Some(c) = core.conns.get_mut(slot) else {
            continue;
        };
        c.in_dirty = false;
        let id = ConnId {
            slot: slot as u32,
            gen: c.gen,
        };
        match c.flush_out(&core.fanout, scratch) {
            Ok((n, Flush::Done)) => {
                c.bytes_written += n as u64;
                if c.input.resume() {
                    reader.reread(id);
                }
                if c.state == ConnState::Closing {
                    c.shutdown_write();
                    c.state = ConnState::Lingering;
                }
            }
            Ok((n, Flush::Blocked)) => {
                c.bytes_written += n as u64;
                if c.out.holds_turn() {
                    core.held_turn.push(slot);
                }
                if c.out.len() > high {
                    // Back-pressure: stop reading from a client that does not read its answers.
                    c.input.pause();
                } else if c.out.len() < low && c.input.resume() {
                    reader.reread(id);
                }
            }
            Err(_) => {
                core.stats.send_fail += 1;
                core.request_close(id, CloseHow::Now);
            }
        }
    }
    let mut dirty = dirty;
    dirty.clear();
    if core.dirty.is_empty() {
        // Reuse the allocation for the next turn.
        core.dirty = dirty;
    }
}
