//! A message encoded once for every framing, queued on one or many connections.

use super::core::Core;
use crate::connection::Framing;
use crate::gateway::client_id::ConnId;
use crate::protocol::websocket::frame as ws_frame;
use crate::protocol::Payload;
use std::cell::Cell;

/// Smallest frame worth sharing between several receivers; smaller ones are cheaper to copy
/// (and coalesce better into one owned segment).
const SHARE_MIN: usize = 64;

/// A message encoded once for every protocol, framed into the worker's per-turn fan-out
/// buffer and queued as a range of it: once for every receiver when it has several, and also
/// when it has one (copying it there costs what copying it into the receiver's own segment
/// costs, without that segment's allocation and free on every flush: a quarter of the
/// instructions of a ping-pong echo). Small frames for several receivers are copied into each
/// receiver's own segment instead.
pub(crate) struct Encoded<'a> {
    ws_head: [u8; 10],
    ws_head_len: usize,
    body: &'a [u8],
    share: bool,
    /// Where each framing sits in the worker's fan-out buffer, once written there.
    ws_at: Cell<Option<(usize, usize)>>,
    text_at: Cell<Option<(usize, usize)>>,
}

impl<'a> Encoded<'a> {
    /// Encode `msg` once.
    pub(crate) fn new(msg: Payload<'a>) -> Encoded<'a> {
        let (op, body) = match msg {
            Payload::Text(s) => (ws_frame::OpCode::Text, s.as_bytes()),
            Payload::Binary(b) => (ws_frame::OpCode::Binary, b),
        };
        let mut ws_head = [0u8; 10];
        let ws_head_len = ws_frame::server_header(op, body.len(), &mut ws_head);
        Encoded {
            ws_head,
            ws_head_len,
            body,
            share: true,
            ws_at: Cell::new(None),
            text_at: Cell::new(None),
        }
    }

    /// Encode `msg` once for `receivers` connections: shared if that saves copies.
    pub(crate) fn for_receivers(msg: Payload<'a>, receivers: usize) -> Encoded<'a> {
        let mut e = Encoded::new(msg);
        e.share = receivers <= 1 || e.body.len() >= SHARE_MIN;
        e
    }

    /// Queue this message on `slot` in the framing its protocol needs.
    pub(crate) fn queue(&self, core: &mut Core, slot: usize) {
        let Some(c) = core.conns.get(slot) else {
            return;
        };
        if !c.accepts_messages() {
            return;
        }
        let head = &self.ws_head[..self.ws_head_len];
        match (c.framing, self.share) {
            (Framing::Ws, false) => core.queue_raw(slot, head, self.body),
            (Framing::Text, false) => core.queue_raw(slot, self.body, b"\n"),
            (Framing::Ws, true) => {
                let (start, end) = placed(&self.ws_at, &mut core.fanout, head, self.body);
                core.queue_turn(slot, start, end);
            }
            (Framing::Text, true) => {
                let (start, end) = placed(&self.text_at, &mut core.fanout, self.body, b"\n");
                core.queue_turn(slot, start, end);
            }
            (Framing::None, _) => {}
        }
    }

    /// Queue on a local connection if `id` is still the same one.
    pub(crate) fn queue_id(&self, core: &mut Core, id: ConnId) {
        if core.get(id).is_some() {
            self.queue(core, id.slot as usize);
        }
    }
}

/// The range of `a` then `b` in the fan-out buffer, appending them on first use.
fn placed(
    at: &Cell<Option<(usize, usize)>>,
    fanout: &mut Vec<u8>,
    a: &[u8],
    b: &[u8],
) -> (usize, usize) {
    if let Some(r) = at.get() {
        return r;
    }
    let start = fanout.len();
    fanout.extend_from_slice(a);
    fanout.extend_from_slice(b);
    let r = (start, fanout.len());
    at.set(Some(r));
    r
}
