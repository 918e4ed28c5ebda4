//! Reading client sockets: the per-event read budget, back-pressure and held requests
//! (`Input`), and the worker-wide bound on buffered undecoded input. Decoding and the app's
//! events are in `input.rs`.

use super::input::{self, InputSettings};
use super::{close, Base, SCRATCH};
use crate::connection::{ConnState, Input, Proto};
use crate::gateway::client_id::ConnId;
use crate::state::CloseHow;
use crate::tls::session::Got;
use std::io;

/// Bytes read from one connection per event before giving others a turn.
const READ_BUDGET: usize = 256 * 1024;

/// Whether client bytes are read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Read as they come.
    Reading,
    /// Retiring by hand-over: what clients send waits in the kernel for the successor.
    Held,
}

/// The reading side of the worker's connections.
pub(super) struct Reader {
    settings: InputSettings,
    mode: Mode,
    /// Connections with unread input left over from an exhausted read budget, or whose reads
    /// resumed (the loop is edge-triggered, so no new event would bring them back).
    reread: Vec<ConnId>,
}

impl Reader {
    /// A reader decoding with `settings`.
    pub(super) fn new(settings: InputSettings) -> Reader {
        Reader {
            settings,
            mode: Mode::Reading,
            reread: Vec::new(),
        }
    }

    /// Stop reading client bytes for good (the connections are about to move).
    pub(super) fn hold(&mut self) {
        self.mode = Mode::Held;
    }

    /// Some connection is to be read again next turn.
    pub(super) fn has_pending(&self) -> bool {
        !self.reread.is_empty()
    }

    /// Read `id` again next turn.
    pub(super) fn reread(&mut self, id: ConnId) {
        self.reread.push(id);
    }

    /// Readiness of the connection at `slot`.
    pub(super) fn event(&mut self, b: &mut Base, slot: usize, ev: &mio::event::Event) {
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.read(b, slot);
        }
        if ev.is_writable() {
            if let Some(c) = b.core.conns.get_mut(slot) {
                if c.has_output() && !c.in_dirty {
                    c.in_dirty = true;
                    b.core.dirty.push(slot);
                }
            }
        }
    }

    /// Read the connections the last turn left to read again.
    pub(super) fn continue_pending(&mut self, b: &mut Base) {
        for id in std::mem::take(&mut self.reread) {
            if b.core.get(id).is_some() {
                self.read(b, id.index());
                close::apply(b);
            }
        }
    }

    /// Read from `slot` until WouldBlock, EOF or the budget; hand the bytes to the decoders.
    fn read(&mut self, b: &mut Base, slot: usize) {
        if self.mode == Mode::Held {
            return;
        }
        let mut total = 0;
        loop {
            let Some(c) = b.core.conns.get_mut(slot) else {
                return;
            };
            let id = ConnId {
                slot: slot as u32,
                gen: c.gen,
            };
            match c.input {
                Input::Flowing => {}
                Input::Paused | Input::AwaitingApp => return,
                Input::Resumed => {
                    // Requests held back while paused come before anything new on the socket.
                    c.input = Input::Flowing;
                    self.feed(b, id, 0);
                    match b.core.get(id) {
                        Some(c) if c.input == Input::Flowing => continue,
                        _ => return,
                    }
                }
            }
            let got = c.read_in(&mut b.scratch, &mut b.tls_scratch);
            if let Some(t) = &mut c.tls {
                let established = t.take_established();
                let rekeyed = t.take_rekeyed();
                if (t.wants_write() || (established && !c.out.is_empty())) && !c.in_dirty {
                    // Handshake answers and alerts go out with this turn's flush, and so does
                    // output queued while the handshake ran.
                    c.in_dirty = true;
                    b.core.dirty.push(slot);
                }
                // What rustls' records held back for this connection (a partial record)
                // counts like undecoded plain input.
                let (was, now) = t.recount();
                b.buffered_input = b.buffered_input.saturating_sub(was) + now;
                if established {
                    super::tls::established(b, id);
                }
                if rekeyed {
                    super::tls::rekeyed(b, id);
                }
                if now > was && b.buffered_input > b.core.limits.max_buffered_input {
                    over_budget(b, id);
                    return;
                }
            }
            let Some(c) = b.core.conns.get_mut(slot) else {
                return;
            };
            // `spent`: a TLS read stopped at its budget before the socket was drained.
            let (n, spent) = match got {
                Ok(Got::Bytes(0)) => {
                    b.core.request_close(id, CloseHow::Now);
                    return;
                }
                Ok(Got::Bytes(n)) => (n, false),
                Ok(Got::Spent(n)) => (n, true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    b.core.request_close(id, CloseHow::Now);
                    return;
                }
            };
            if n > 0 {
                // Records without data (a TLS read that spent its budget on them) do not keep
                // a connection alive against the idle deadline.
                c.bytes_read += n as u64;
                c.last_active = b.core.now;
                total += n;
                if matches!(c.state, ConnState::Open | ConnState::Handshake) {
                    self.feed(b, id, n);
                }
            }
            if spent {
                // The TLS read spent its budget on records that gave little or nothing (a
                // flood of empty records, say): the others get their turn first.
                self.reread.push(id);
                return;
            }
            if n < b.scratch.len() {
                // A short read drained the socket; new bytes will raise a new edge.
                return;
            }
            if total >= READ_BUDGET {
                self.reread.push(id);
                return;
            }
        }
    }

    /// Decode `n` fresh bytes (in the scratch buffer) for `id`.
    fn feed(&mut self, b: &mut Base, id: ConnId, n: usize) {
        let Some(c) = b.core.get_mut(id) else {
            return;
        };
        let mut proto = std::mem::replace(&mut c.proto, Proto::Http);
        let mut held = std::mem::take(&mut c.in_buf);
        let before = held.capacity();
        let fresh = &mut b.scratch[..n];
        if held.is_empty() {
            let used = input::process(
                &mut b.core,
                b.app.as_mut(),
                &self.settings,
                id,
                &mut proto,
                fresh,
            );
            if used < n {
                held.extend_from_slice(&fresh[used..]);
            }
        } else {
            held.extend_from_slice(fresh);
            let used = input::process(
                &mut b.core,
                b.app.as_mut(),
                &self.settings,
                id,
                &mut proto,
                &mut held,
            );
            held.drain(..used);
        }
        let Some(c) = b.core.get_mut(id) else {
            // Closed while its bytes were handled: `drop_conn` took off what it held before.
            b.buffered_input = b.buffered_input.saturating_sub(before);
            return;
        };
        c.proto = proto;
        if held.capacity() > SCRATCH && held.len() < SCRATCH / 4 {
            held.shrink_to(SCRATCH / 4);
        }
        let after = held.capacity();
        c.in_buf = held;
        b.buffered_input = b.buffered_input.saturating_sub(before) + after;
        if after > before && b.buffered_input > b.core.limits.max_buffered_input {
            over_budget(b, id);
        }
    }
}

/// The worker holds as much undecoded input as it may: the connection asking for more (`id`)
/// goes, not the ones already waiting for their next bytes.
fn over_budget(b: &mut Base, id: ConnId) {
    if let Some(skipped) = b.quiet.allow(b.core.now) {
        crate::warn!(
            "worker {}: limits.max_buffered_input reached; closing the connection that \
             grows ({skipped} more since the last warning)",
            b.core.worker_id
        );
    }
    b.core.request_close(id, CloseHow::Now);
}
