//! The outgoing byte queue of one connection.
//!
//! Messages queued during a loop turn are written with one `writev` at the end of the turn
//! (write coalescing). Bytes for one receiver are copied into an owned segment. A message sent
//! to several receivers is framed once into the worker's per-turn fan-out buffer and each queue
//! records only a range of it; consecutive broadcasts land next to each other there, so a room
//! member's whole turn of broadcasts is one range, one iovec, one copy by the kernel from bytes
//! every member shares. Ranges still queued when the turn ends (a socket that is full) are
//! copied into the connection's own bytes ([`OutBuf::freeze`]): a slow reader then holds
//! exactly what it owes and never pins a whole turn's buffer for a few bytes of it. A queue
//! gives its memory back once it drains, so 100k idle connections cost no buffer memory.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// First capacity of an owned segment: a turn of small messages fits without regrowing, and
/// the allocation stays in malloc's per-thread cache.
const OWN_FIRST: usize = 1024;
/// Owned segments grow up to this before a new one is started, so a big backlog is not
/// reallocated (and copied) as a whole.
const OWN_CHUNK: usize = 64 * 1024;
/// Most segments handed to one `writev`.
const MAX_IOV: usize = 64;

/// A run of queued bytes.
#[derive(Debug)]
enum Seg {
    /// Bytes only this connection sends.
    Own(Vec<u8>),
    /// A range of the current turn's fan-out buffer.
    Turn { start: usize, end: usize },
}

impl Seg {
    fn bytes<'a>(&'a self, turn: &'a [u8]) -> &'a [u8] {
        match self {
            Seg::Own(v) => v,
            // A turn range outliving its turn would be a bug in the worker's sealing; sending
            // nothing then is better than a panic that takes every connection down.
            Seg::Turn { start, end } => turn.get(*start..*end).unwrap_or_default(),
        }
    }
}

/// Outgoing bytes not yet written to the socket.
#[derive(Debug, Default)]
pub struct OutBuf {
    /// The front segment, inline: most flushes write a queue of exactly one segment (a turn's
    /// range, or one run of owned bytes), which then needs no segment list allocated and freed.
    head: Option<Seg>,
    /// The segments after `head` (none whenever `head` is `None`), boxed: most queues never
    /// have a second segment, and an idle connection's queue stays as small as it was before
    /// `head` was inline (48 bytes).
    #[allow(clippy::box_collection)] // the box is the point: 8 bytes instead of 32 per queue
    rest: Option<Box<VecDeque<Seg>>>,
    /// Bytes of the front segment already written.
    pos: usize,
    /// Bytes waiting over all segments.
    len: usize,
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything was written.
    Done,
    /// The socket is full; wait for a writable event.
    Blocked,
}

impl OutBuf {
    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn back(&self) -> Option<&Seg> {
        self.rest
            .as_ref()
            .and_then(|r| r.back())
            .or(self.head.as_ref())
    }

    fn back_mut(&mut self) -> Option<&mut Seg> {
        match self.rest.as_mut().and_then(|r| r.back_mut()) {
            Some(s) => Some(s),
            None => self.head.as_mut(),
        }
    }

    fn push_seg(&mut self, s: Seg) {
        if self.head.is_none() {
            self.head = Some(s);
        } else {
            self.rest.get_or_insert_with(Box::default).push_back(s);
        }
    }

    fn segs(&self) -> impl Iterator<Item = &Seg> {
        self.head
            .iter()
            .chain(self.rest.iter().flat_map(|r| r.iter()))
    }

    fn rest_is_empty(&self) -> bool {
        self.rest.as_ref().is_none_or(|r| r.is_empty())
    }

    /// The owned segment at the back, with room for `extra` more bytes (starting one if needed).
    fn own_tail(&mut self, extra: usize) -> &mut Vec<u8> {
        let reuse = matches!(self.back(), Some(Seg::Own(v)) if v.is_empty() || v.len() + extra <= OWN_CHUNK);
        if !reuse {
            self.push_seg(Seg::Own(Vec::with_capacity(extra.max(OWN_FIRST))));
        }
        match self.back_mut() {
            Some(Seg::Own(v)) => v,
            _ => unreachable!("the back segment was just checked or pushed as owned"),
        }
    }

    /// Queue bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.own_tail(bytes.len()).extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Queue two slices (a frame header and its payload) without building a temporary.
    pub fn push2(&mut self, head: &[u8], body: &[u8]) {
        let v = self.own_tail(head.len() + body.len());
        v.extend_from_slice(head);
        v.extend_from_slice(body);
        self.len += head.len() + body.len();
    }

    /// Queue `start..end` of the current turn's fan-out buffer (extending the last range when
    /// it ends where this one starts).
    pub fn push_turn(&mut self, start: usize, end: usize) {
        if end <= start {
            return;
        }
        self.len += end - start;
        if let Some(Seg::Turn { end: e, .. }) = self.back_mut() {
            if *e == start {
                *e = end;
                return;
            }
        }
        self.push_seg(Seg::Turn { start, end });
    }

    /// Whether ranges of the current turn's fan-out buffer are still queued.
    pub fn holds_turn(&self) -> bool {
        self.segs().any(|s| matches!(s, Seg::Turn { .. }))
    }

    /// The turn is ending (`turn`: its fan-out bytes, about to be reused): copy the ranges
    /// still queued into owned segments. Only a socket that was full gets here, and it copies
    /// no more than it already owes.
    pub fn freeze(&mut self, turn: &[u8]) {
        if !self.holds_turn() {
            return;
        }
        // The front keeps its bytes in place (only their owner changes), so `pos` stays valid.
        let head = self.head.take();
        let rest = self.rest.take().map(|r| *r).unwrap_or_default();
        for s in head.into_iter().chain(rest) {
            match s {
                Seg::Turn { start, end } => {
                    let b = turn.get(start..end).unwrap_or_default();
                    self.own_tail(b.len()).extend_from_slice(b);
                }
                own => self.push_seg(own),
            }
        }
    }

    /// Every byte still to be written, in order (`turn`: the current turn's fan-out bytes):
    /// what a reload's hand-over carries to the successor, which queues it first.
    pub fn pending_bytes(&self, turn: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for (i, s) in self.segs().enumerate() {
            let b = s.bytes(turn);
            v.extend_from_slice(if i == 0 {
                b.get(self.pos..).unwrap_or_default()
            } else {
                b
            });
        }
        v
    }

    /// Write as much as the socket takes (`turn`: the current turn's fan-out bytes); returns
    /// bytes written and whether all went out.
    pub fn flush_to(&mut self, w: &mut impl Write, turn: &[u8]) -> io::Result<(usize, Flush)> {
        let mut written = 0;
        while self.len > 0 {
            let res = match (&self.head, self.rest_is_empty()) {
                (Some(only), true) => w.write(&only.bytes(turn)[self.pos..]),
                _ => {
                    let mut iov = [IoSlice::new(&[]); MAX_IOV];
                    let mut n = 0;
                    for (i, s) in self.segs().take(MAX_IOV).enumerate() {
                        let b = s.bytes(turn);
                        iov[n] = IoSlice::new(if i == 0 { &b[self.pos..] } else { b });
                        n += 1;
                    }
                    w.write_vectored(&iov[..n])
                }
            };
            match res {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) if n == self.len => {
                    // All of it went out (the common case): nothing to walk segment by segment.
                    written += n;
                    self.len = 0;
                }
                Ok(n) => {
                    written += n;
                    self.consume(n, turn);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((written, Flush::Blocked));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.settle();
        Ok((written, Flush::Done))
    }

    /// Drop `n` written bytes from the front.
    fn consume(&mut self, mut n: usize, turn: &[u8]) {
        self.len -= n;
        while n > 0 {
            let Some(front) = &self.head else {
                break;
            };
            let left = front.bytes(turn).len() - self.pos;
            if n < left {
                self.pos += n;
                return;
            }
            n -= left;
            if self.rest_is_empty() {
                // The last segment stays until `settle` (the queue is empty now).
                self.pos += left;
                return;
            }
            self.pos = 0;
            self.head = self.rest.as_mut().and_then(|r| r.pop_front());
        }
    }

    /// After a full drain: give every allocation back. An idle connection then holds no
    /// buffer at all (most of 100k connections are idle most of the time); a busy one pays
    /// one allocation per flush for owned bytes (none for a turn's range).
    fn settle(&mut self) {
        self.pos = 0;
        self.head = None;
        self.rest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call and then says WouldBlock once.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        block_next: bool,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.block_next {
                self.block_next = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.block_next = true;
            let n = b.len().min(self.cap);
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn trickle(cap: usize) -> Trickle {
        Trickle {
            got: vec![],
            cap,
            block_next: false,
        }
    }

    #[test]
    fn partial_writes_keep_order() {
        let mut o = OutBuf::default();
        o.push(b"hello ");
        o.push2(b"wor", b"ld");
        let mut w = trickle(4);
        let mut rounds = 0;
        while o.flush_to(&mut w, &[]).unwrap().1 == Flush::Blocked {
            rounds += 1;
        }
        assert!(rounds > 1);
        assert_eq!(w.got, b"hello world");
        assert!(o.is_empty());
    }

    #[test]
    fn turn_ranges_merge_and_interleave_with_owned_bytes_in_order() {
        let turn = b"<one><two><three>".to_vec();
        let mut o = OutBuf::default();
        o.push(b"a ");
        o.push_turn(0, 5);
        o.push_turn(5, 10);
        assert_eq!(o.segs().count(), 2, "adjacent ranges become one segment");
        o.push2(b" b", b" ");
        o.push_turn(10, 17);
        o.push_turn(0, 5);
        assert_eq!(o.len(), 2 + 10 + 3 + 7 + 5);
        let mut w = trickle(3);
        while o.flush_to(&mut w, &turn).unwrap().1 == Flush::Blocked {}
        assert_eq!(w.got, b"a <one><two> b <three><one>");
        assert!(o.is_empty() && !o.holds_turn());
    }

    #[test]
    fn frozen_ranges_survive_the_turn_as_owned_bytes() {
        let mut a = OutBuf::default();
        let mut b = OutBuf::default();
        a.push_turn(0, 4);
        a.push(b"!");
        b.push_turn(4, 8);
        // `a`'s socket takes two bytes and is then full; the turn ends.
        let mut w = trickle(2);
        assert_eq!(a.flush_to(&mut w, b"abcdefgh").unwrap().1, Flush::Blocked);
        assert!(a.holds_turn() && b.holds_turn());
        a.freeze(b"abcdefgh");
        b.freeze(b"abcdefgh");
        assert!(!a.holds_turn() && !b.holds_turn());
        assert_eq!((a.len(), b.len()), (3, 4));
        // Next turn: the fan-out buffer was reused for other bytes.
        let next = b"XXXXXXXX";
        while a.flush_to(&mut w, next).unwrap().1 == Flush::Blocked {}
        assert_eq!(w.got, b"abcd!");
        let mut out = Vec::new();
        b.flush_to(&mut out, next).unwrap();
        assert_eq!(out, b"efgh");
    }

    #[test]
    fn vectored_writes_cover_more_than_one_iovec_batch() {
        let turn = b"xy".to_vec();
        let mut o = OutBuf::default();
        for i in 0..(MAX_IOV * 3) {
            if i % 2 == 0 {
                o.push_turn(0, 2);
            } else {
                o.push(b"-");
            }
        }
        let mut out = Vec::new();
        let (n, f) = o.flush_to(&mut out, &turn).unwrap();
        assert_eq!(f, Flush::Done);
        assert_eq!(n, MAX_IOV * 3 / 2 * 3);
        assert_eq!(out, b"xy-".repeat(MAX_IOV * 3 / 2));
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Queue these bytes as this connection's own.
        Own(Vec<u8>),
        /// Append these bytes to the turn buffer and queue their range.
        Turn(Vec<u8>),
        /// Let the socket take up to this many bytes, then be full.
        Flush(usize),
        /// The turn ends: ranges still queued become owned bytes; the buffer is reused.
        EndTurn,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Own),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Turn),
            (0usize..100).prop_map(Op::Flush),
            Just(Op::EndTurn),
        ]
    }

    proptest::proptest! {
        /// Whatever mix of owned bytes, turn ranges, partial writes and turn ends, the socket
        /// receives exactly the queued bytes in order.
        #[test]
        fn the_socket_gets_every_queued_byte_in_order(ops in proptest::collection::vec(op(), 0..60)) {
            let mut o = OutBuf::default();
            let mut turn: Vec<u8> = Vec::new();
            let mut want: Vec<u8> = Vec::new();
            let mut w = trickle(0);
            for op in ops {
                match op {
                    Op::Own(b) => {
                        want.extend_from_slice(&b);
                        o.push(&b);
                    }
                    Op::Turn(b) => {
                        want.extend_from_slice(&b);
                        let start = turn.len();
                        turn.extend_from_slice(&b);
                        o.push_turn(start, turn.len());
                    }
                    Op::Flush(cap) => {
                        w.cap = cap.max(1);
                        w.block_next = false;
                        o.flush_to(&mut w, &turn).unwrap();
                    }
                    Op::EndTurn => {
                        o.freeze(&turn);
                        turn.clear();
                        // Poison reuse: a stale range would now read these bytes.
                        turn.extend_from_slice(&[0xEE; 7]);
                    }
                }
                proptest::prop_assert_eq!(o.len() + w.got.len(), want.len());
            }
            // What a hand-over would carry is exactly what the socket has not got yet.
            let mut carried = w.got.clone();
            carried.extend(o.pending_bytes(&turn));
            proptest::prop_assert_eq!(&carried, &want);
            w.cap = usize::MAX;
            while o.flush_to(&mut w, &turn).unwrap().1 == Flush::Blocked {}
            proptest::prop_assert_eq!(&w.got, &want);
            proptest::prop_assert!(o.is_empty());
        }
    }

    #[test]
    fn a_drained_queue_holds_no_memory() {
        let mut o = OutBuf::default();
        o.push(b"hello");
        o.push_turn(0, 2);
        o.flush_to(&mut Vec::new(), b"xy").unwrap();
        assert!(o.is_empty());
        assert!(o.head.is_none());
        assert!(o.rest.is_none());
    }
}
