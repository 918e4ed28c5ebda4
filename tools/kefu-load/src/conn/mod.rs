//! One thread's share of client connections: a non-blocking mio loop with bounded buffers.
//!
//! Scenarios drive it with `connect`, `poll` (which fills a [`Batch`] of events), `send` and
//! `flush`; writes are queued per connection and flushed once per loop turn.

mod event;
mod tls;

use event::push_message;
pub use event::{Batch, CloseReason, Event, Kind};
use tls::{flush_tls, tls_read};

use crate::sys;
use crate::target::{Proto, Target};
use crate::ws::{self, Opcode, Rng, WsError};
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest inbound message accepted (frames and text lines).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Per-connection outbound backlog beyond which `send` refuses (backpressure).
pub const MAX_PENDING_WRITE: usize = 4 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    /// TCP is up; the TLS handshake runs (TLS targets only).
    TlsHandshaking,
    Handshaking,
    Open,
}

struct Conn {
    stream: mio::net::TcpStream,
    state: State,
    key: String,
    started: Instant,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    frag: Vec<u8>,
    frag_kind: Option<Kind>,
    dirty: bool,
    /// The TLS session of a TLS target: `wbuf` is plaintext fed to it, `rbuf` decrypted.
    tls: Option<Box<rustls::ClientConnection>>,
}

/// A set of client connections sharing one mio `Poll`.
pub struct Net {
    poll: Poll,
    events: Events,
    target: Arc<Target>,
    conns: Vec<Option<Conn>>,
    dirty: Vec<usize>,
    closing: Vec<(usize, CloseReason)>,
    rng: Rng,
    scratch: Vec<u8>,
    /// Readiness of the last poll, kept between turns so a turn does not allocate.
    ready: Vec<Ready>,
    pending_setup: usize,
    open: usize,
}

/// One connection's readiness from a poll: (id, readable, closed, writable).
type Ready = (usize, bool, bool, bool);

impl Net {
    /// Creates an empty loop for `target`; `salt` decorrelates RNGs across threads.
    pub fn new(target: Arc<Target>, salt: u64) -> io::Result<Net> {
        Ok(Net {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            target,
            conns: Vec::new(),
            dirty: Vec::new(),
            closing: Vec::new(),
            rng: Rng::new(salt),
            scratch: vec![0; READ_CHUNK],
            ready: Vec::with_capacity(1024),
            pending_setup: 0,
            open: 0,
        })
    }

    /// Mutable access to the loop's RNG (random targets, payloads).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Starts connecting; `global_index` picks the source address. Returns the local id, or
    /// the immediate error (reported by the caller as a setup failure).
    pub fn connect(&mut self, global_index: usize) -> Result<usize, CloseReason> {
        let src = sys::source_addr(&self.target.addr, global_index);
        let mut stream = sys::start_connect(self.target.addr, src).map_err(CloseReason::Connect)?;
        let id = self.conns.len();
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(id),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(CloseReason::Connect)?;
        let key = if self.target.is_ws() {
            ws::new_key(&mut self.rng)
        } else {
            String::new()
        };
        let tls = match &self.target.tls {
            None => None,
            Some(t) => {
                let config = t.config.clone().ok_or_else(|| {
                    CloseReason::Io(io::Error::other("TLS target without a CA (--ca)"))
                })?;
                let mut c = rustls::ClientConnection::new(config, t.name.clone())
                    .map_err(CloseReason::Tls)?;
                c.set_buffer_limit(Some(MAX_PENDING_WRITE));
                Some(Box::new(c))
            }
        };
        self.conns.push(Some(Conn {
            stream,
            state: State::Connecting,
            key,
            started: Instant::now(),
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            wpos: 0,
            frag: Vec::new(),
            frag_kind: None,
            dirty: false,
            tls,
        }));
        self.pending_setup += 1;
        Ok(id)
    }

    /// Flushes queued writes, waits up to `timeout` for I/O and appends what happened to `batch`.
    pub fn poll(&mut self, timeout: Option<Duration>, batch: &mut Batch) -> io::Result<()> {
        self.flush();
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|e| {
            let closed = e.is_read_closed() || e.is_error();
            (
                e.token().0,
                e.is_readable() || closed,
                closed,
                e.is_writable() || e.is_error(),
            )
        }));
        for &(id, readable, closed, writable) in &ready {
            self.handle(id, readable, closed, writable, now, batch);
        }
        self.ready = ready;
        self.reap(batch);
        Ok(())
    }

    fn handle(
        &mut self,
        id: usize,
        readable: bool,
        closed: bool,
        writable: bool,
        now: Instant,
        batch: &mut Batch,
    ) {
        let Some(conn) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if conn.state == State::Connecting {
            if let Ok(Some(e)) | Err(e) = conn.stream.take_error() {
                self.closing.push((id, CloseReason::Connect(e)));
                return;
            }
            match conn.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    self.closing.push((id, CloseReason::Connect(e)));
                    return;
                }
            }
            if conn.tls.is_some() {
                // The ClientHello rustls queued goes out with the flush.
                conn.state = State::TlsHandshaking;
                mark_dirty(&mut self.dirty, conn, id);
            } else {
                conn.begin(&self.target.proto, id, now, batch, &mut self.dirty);
                if conn.state == State::Open {
                    self.pending_setup -= 1;
                    self.open += 1;
                }
            }
        }
        if readable {
            if let Err(reason) = self.read(id, closed, now, batch) {
                self.closing.push((id, reason));
                return;
            }
        }
        if writable {
            if let Some(conn) = self.conns[id].as_mut() {
                if let Err(e) = conn.flush() {
                    self.closing.push((id, CloseReason::Io(e)));
                }
            }
        }
    }

    /// Reads what is queued; `closed` (peer already shut down) forces reading on to the EOF.
    fn read(
        &mut self,
        id: usize,
        closed: bool,
        now: Instant,
        batch: &mut Batch,
    ) -> Result<(), CloseReason> {
        let Some(conn) = self.conns[id].as_mut() else {
            return Ok(());
        };
        // Edge-triggered: drain until WouldBlock, parsing after each chunk to bound the buffer.
        loop {
            let got = match conn.tls.as_mut() {
                None => conn.stream.read(&mut self.scratch).map(|n| {
                    conn.rbuf.extend_from_slice(&self.scratch[..n]);
                    (n, n < self.scratch.len())
                }),
                Some(t) => tls_read(t, &mut conn.stream, &mut self.scratch, &mut conn.rbuf)?,
            };
            match got {
                Ok((0, _)) => return Err(CloseReason::Eof),
                Ok((_, drained)) => {
                    let was_setup = conn.state != State::Open;
                    if conn.tls.as_ref().is_some_and(|t| t.wants_write()) {
                        mark_dirty(&mut self.dirty, conn, id);
                    }
                    if conn.state == State::TlsHandshaking
                        && conn.tls.as_ref().is_some_and(|t| !t.is_handshaking())
                    {
                        conn.begin(&self.target.proto, id, now, batch, &mut self.dirty);
                    }
                    let outcome = conn.parse(
                        &self.target.proto,
                        id,
                        now,
                        batch,
                        &mut self.rng,
                        &mut self.dirty,
                    );
                    if was_setup && conn.state == State::Open {
                        self.pending_setup -= 1;
                        self.open += 1;
                    }
                    outcome?;
                    // A short read drained the socket queue; data arriving later raises a
                    // new edge, so skip the read that would only return WouldBlock.
                    if drained && !closed {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e)),
            }
        }
    }

    fn reap(&mut self, batch: &mut Batch) {
        for (id, reason) in std::mem::take(&mut self.closing) {
            if let Some(mut conn) = self.conns[id].take() {
                let _ = self.poll.registry().deregister(&mut conn.stream);
                let was_open = conn.state == State::Open;
                if was_open {
                    self.open -= 1;
                } else {
                    self.pending_setup -= 1;
                }
                batch.events.push(Event::Closed {
                    id,
                    was_open,
                    reason,
                });
            }
        }
    }

    /// Queues one message; false if the connection is not open or its backlog is full.
    pub fn send(&mut self, id: usize, kind: Kind, payload: &[u8]) -> bool {
        let Some(conn) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return false;
        };
        if conn.state != State::Open || conn.wbuf.len() - conn.wpos > MAX_PENDING_WRITE {
            return false;
        }
        match self.target.proto {
            Proto::Ws { .. } => {
                let op = match kind {
                    Kind::Text => Opcode::Text,
                    Kind::Binary => Opcode::Binary,
                };
                ws::write_frame(&mut conn.wbuf, op, payload, self.rng.next_u64() as u32);
            }
            Proto::Text => {
                conn.wbuf.extend_from_slice(payload);
                conn.wbuf.push(b'\n');
            }
        }
        mark_dirty(&mut self.dirty, conn, id);
        true
    }

    /// Writes every connection's queued bytes (one batch per loop turn).
    pub fn flush(&mut self) {
        for id in std::mem::take(&mut self.dirty) {
            if let Some(conn) = self.conns[id].as_mut() {
                conn.dirty = false;
                if let Err(e) = conn.flush() {
                    self.closing.push((id, CloseReason::Io(e)));
                }
            }
        }
    }

    /// Fails connections whose connect + handshake exceeded `limit`; returns them via `batch`.
    pub fn expire_setup(&mut self, limit: Duration, batch: &mut Batch) {
        if self.pending_setup == 0 {
            return;
        }
        let now = Instant::now();
        for (id, slot) in self.conns.iter().enumerate() {
            if let Some(c) = slot {
                if c.state != State::Open && now - c.started > limit {
                    self.closing.push((id, CloseReason::HandshakeTimeout));
                }
            }
        }
        self.reap(batch);
    }

    /// Flushes pending failures detected outside `poll` (e.g. by `flush`) into `batch`.
    pub fn collect_closed(&mut self, batch: &mut Batch) {
        self.reap(batch);
    }
}

fn mark_dirty(dirty: &mut Vec<usize>, conn: &mut Conn, id: usize) {
    if !conn.dirty {
        conn.dirty = true;
        dirty.push(id);
    }
}

/// Whole microseconds in `d`, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Conn {
    /// Connected (and through TLS, for a TLS target): send the upgrade request, or for the
    /// text protocol be open at once.
    fn begin(
        &mut self,
        proto: &Proto,
        id: usize,
        now: Instant,
        batch: &mut Batch,
        dirty: &mut Vec<usize>,
    ) {
        match proto {
            Proto::Ws { host, path } => {
                ws::write_upgrade_request(&mut self.wbuf, host, path, &self.key);
                self.state = State::Handshaking;
                mark_dirty(dirty, self, id);
            }
            Proto::Text => {
                self.state = State::Open;
                batch.events.push(Event::Open {
                    id,
                    setup_us: micros(now - self.started),
                });
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(t) = self.tls.as_mut() {
            return flush_tls(t, &mut self.stream, &mut self.wbuf, &mut self.wpos);
        }
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        } else if self.wpos > READ_CHUNK && self.wpos * 2 > self.wbuf.len() {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        Ok(())
    }

    /// Consumes complete units (handshake, frames, lines) from the read buffer.
    fn parse(
        &mut self,
        proto: &Proto,
        id: usize,
        now: Instant,
        batch: &mut Batch,
        rng: &mut Rng,
        dirty: &mut Vec<usize>,
    ) -> Result<(), CloseReason> {
        let result = self.parse_inner(proto, id, now, batch, rng, dirty);
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        } else if self.rpos > 0 {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        result
    }

    fn parse_inner(
        &mut self,
        proto: &Proto,
        id: usize,
        now: Instant,
        batch: &mut Batch,
        rng: &mut Rng,
        dirty: &mut Vec<usize>,
    ) -> Result<(), CloseReason> {
        if self.state == State::Handshaking {
            match ws::parse_upgrade_response(&self.rbuf, &self.key) {
                Ok(None) => return Ok(()),
                Ok(Some(n)) => {
                    self.rpos = n;
                    self.state = State::Open;
                    batch.events.push(Event::Open {
                        id,
                        setup_us: micros(now - self.started),
                    });
                }
                Err(e) => return Err(CloseReason::Protocol(e)),
            }
        }
        if self.state != State::Open {
            return Ok(());
        }
        if matches!(proto, Proto::Text) {
            while let Some(nl) = memchr(b'\n', &self.rbuf[self.rpos..]) {
                let mut line = &self.rbuf[self.rpos..self.rpos + nl];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                push_message(batch, id, Kind::Text, line, now);
                self.rpos += nl + 1;
            }
            if self.rbuf.len() - self.rpos > MAX_MESSAGE {
                return Err(CloseReason::LineTooLong);
            }
            return Ok(());
        }
        loop {
            let head = match ws::parse_frame(&self.rbuf[self.rpos..], MAX_MESSAGE) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(()),
                Err(e) => return Err(CloseReason::Protocol(e)),
            };
            let start = self.rpos + head.payload_start;
            let end = start + head.len;
            if let Some(key) = head.mask {
                ws::apply_mask(&mut self.rbuf[start..end], key);
            }
            self.rpos += head.total();
            let payload = &self.rbuf[start..end];
            match head.op {
                Opcode::Text | Opcode::Binary => {
                    let kind = if head.op == Opcode::Text {
                        Kind::Text
                    } else {
                        Kind::Binary
                    };
                    if self.frag_kind.is_some() {
                        return Err(CloseReason::Protocol(WsError::BadFrame(
                            "new message inside fragmented one",
                        )));
                    }
                    if head.fin {
                        push_message(batch, id, kind, payload, now);
                    } else {
                        self.frag_kind = Some(kind);
                        self.frag.clear();
                        self.frag.extend_from_slice(payload);
                    }
                }
                Opcode::Continuation => {
                    let Some(kind) = self.frag_kind else {
                        return Err(CloseReason::Protocol(WsError::BadFrame(
                            "continuation without start",
                        )));
                    };
                    if self.frag.len() + payload.len() > MAX_MESSAGE {
                        return Err(CloseReason::Protocol(WsError::FrameTooLarge(
                            (self.frag.len() + payload.len()) as u64,
                        )));
                    }
                    self.frag.extend_from_slice(payload);
                    if head.fin {
                        push_message(batch, id, kind, &self.frag, now);
                        self.frag_kind = None;
                        self.frag.clear();
                    }
                }
                Opcode::Ping => {
                    let pong = payload.to_vec();
                    ws::write_frame(&mut self.wbuf, Opcode::Pong, &pong, rng.next_u64() as u32);
                    mark_dirty(dirty, self, id);
                }
                Opcode::Pong => {}
                Opcode::Close => {
                    // Answer in kind (best effort), then report the close.
                    ws::write_frame(&mut self.wbuf, Opcode::Close, &[], rng.next_u64() as u32);
                    let _ = self.flush();
                    return Err(CloseReason::ServerClose);
                }
            }
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests;
