//! A message encoded once for every framing, queued on one or many connections.

use super::core::Core;
use crate::connection::{Deflate, Framing};
use crate::gateway::client_id::ConnId;
use crate::protocol::websocket::frame as ws_frame;
use crate::protocol::Payload;
use std::cell::Cell;

/// Smallest frame worth sharing between several receivers; smaller ones are cheaper to copy
/// (and coalesce better into one owned segment).
const SHARE_MIN: usize = 64;

/// Where the permessage-deflate frame for one window size stands.
#[derive(Debug, Clone, Copy)]
enum Zipped {
    /// Not compressed yet.
    Unknown,
    /// Compressed once, at this range of the fan-out buffer.
    At(usize, usize),
    /// Compression would not make it smaller: sent plain.
    Plain,
}

/// Window sizes our compressor produces (9..=15 bits).
const WINDOWS: usize = 7;

/// A message encoded once for every protocol, framed into the worker's per-turn fan-out
/// buffer and queued as a range of it: once for every receiver when it has several, and also
/// when it has one (copying it there costs what copying it into the receiver's own segment
/// costs, without that segment's allocation and free on every flush: a quarter of the
/// instructions of a ping-pong echo). Small frames for several receivers are copied into each
/// receiver's own segment instead. A compressed frame is built once per window size, whatever the number of its receivers
/// (no context is taken over, so the same bytes suit all of them).
pub(crate) struct Encoded<'a> {
    op: ws_frame::OpCode,
    ws_head: [u8; 10],
    ws_head_len: usize,
    body: &'a [u8],
    share: bool,
    /// Where each framing sits in the worker's fan-out buffer, once written there.
    ws_at: Cell<Option<(usize, usize)>>,
    text_at: Cell<Option<(usize, usize)>>,
    zipped: [Cell<Zipped>; WINDOWS],
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
            op,
            ws_head,
            ws_head_len,
            body,
            share: true,
            ws_at: Cell::new(None),
            text_at: Cell::new(None),
            zipped: std::array::from_fn(|_| Cell::new(Zipped::Unknown)),
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
        let framing = c.framing;
        if let (Framing::Ws, Deflate::On(bits)) = (framing, c.deflate) {
            if core.codecs.wants(self.body.len(), bits) {
                if let Some((start, end)) = self.zipped_for(core, bits) {
                    core.queue_turn(slot, start, end);
                    return;
                }
            }
        }
        let head = &self.ws_head[..self.ws_head_len];
        match (framing, self.share) {
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

    /// The compressed frame for receivers with `bits` (9..=15) in the fan-out buffer, built
    /// on first use; `None` when compression does not pay for this message.
    fn zipped_for(&self, core: &mut Core, bits: u8) -> Option<(usize, usize)> {
        let cell = self.zipped.get(usize::from(bits.checked_sub(9)?))?;
        match cell.get() {
            Zipped::At(start, end) => return Some((start, end)),
            Zipped::Plain => return None,
            Zipped::Unknown => {}
        }
        let Some(z) = core.codecs.compress(self.body, bits) else {
            cell.set(Zipped::Plain);
            return None;
        };
        let mut head = [0u8; 10];
        let n = ws_frame::server_header(self.op, z.len(), &mut head);
        // RSV1: this message is compressed (RFC 7692 §6).
        head[0] |= 0x40;
        let start = core.fanout.len();
        core.fanout.extend_from_slice(&head[..n]);
        core.fanout.extend_from_slice(z);
        let r = (start, core.fanout.len());
        cell.set(Zipped::At(r.0, r.1));
        Some(r)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Limits, Scheme, WebSocketConfig};
    use crate::connection::Conn;
    use std::time::Instant;

    /// A core with `n` open WebSocket connections (real loopback sockets), the first
    /// `deflate` of them with permessage-deflate agreed at a 15-bit window.
    fn core_with(n: usize, deflate: usize) -> (Core, Vec<std::net::TcpStream>) {
        let poll = mio::Poll::new().unwrap();
        let waker = std::sync::Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let mut core = Core::new(0, 1, Limits::default(), &WebSocketConfig::default(), waker);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peers = Vec::new();
        for i in 0..n {
            peers.push(std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap());
            let (s, remote) = l.accept().unwrap();
            let stream = mio::net::TcpStream::from_std(s);
            let mut c = Conn::new(
                0,
                stream,
                Scheme::Websocket,
                remote,
                Instant::now(),
                1024,
                true,
            );
            c.state = crate::connection::ConnState::Open;
            c.framing = Framing::Ws;
            c.deflate = if i < deflate {
                Deflate::On(15)
            } else {
                Deflate::Off
            };
            core.conns.insert(c);
        }
        (core, peers)
    }

    #[test]
    fn one_compression_for_all_receivers_with_the_same_window() {
        let (mut core, _peers) = core_with(5, 3);
        let msg = "{\"type\":\"say\",\"content\":\"hello everyone in the room\"}".repeat(20);
        let enc = Encoded::for_receivers(Payload::Text(&msg), 5);
        for slot in 0..5 {
            enc.queue(&mut core, slot);
        }
        assert_eq!(core.codecs.deflated, 1);
        let sizes: Vec<usize> = (0..5).map(|s| core.conns[s].out.len()).collect();
        assert!(sizes[0] < msg.len() / 4, "{sizes:?}");
        assert_eq!(sizes[..3], [sizes[0]; 3]);
        assert_eq!(sizes[3..], [msg.len() + 4; 2]);
        // Below the threshold nothing is compressed.
        let enc = Encoded::for_receivers(Payload::Text("short"), 5);
        for slot in 0..5 {
            enc.queue(&mut core, slot);
        }
        assert_eq!(core.codecs.deflated, 1);
    }
}
