//! One TLS connection: rustls' unbuffered state machine fed from and flushed to the
//! non-blocking socket, inside the worker's loop (no thread, no blocking handshake).
//!
//! The unbuffered API leaves every buffer to us, so an idle connection holds none: ciphertext
//! is read into the worker's shared TLS scratch and decrypted from there; only what is left of
//! a partial record moves into the session's own `inb` (freed once consumed), and encrypted
//! output lives in `out` only until the socket takes it. Everything the session holds of the
//! peer's input is reported by [`TlsSession::recount`] so the worker counts it against
//! `limits.max_buffered_input`, as it does plain input.

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, WriteTraffic};
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

/// Most bytes of encrypted output a session holds for its socket (a few records): beyond it
/// the plaintext waits in the connection's own output queue, counted against
/// `max_send_buffer`.
const OUT_LIMIT: usize = 32 * 1024;

/// Largest TLS plaintext fragment: one record's worth of output is encrypted at a time.
const RECORD: usize = 16 * 1024;

/// Bytes of record overhead allowed per record when sizing an encryption (header, nonce,
/// tag and content type together are under 40 bytes for every suite rustls offers).
const RECORD_OVERHEAD: usize = 64;

/// Bytes of undecrypted input a session may hold: a handshake message of up to 64 KiB being
/// joined, plus the record read after it. Until the worker is told the handshake is done it
/// counts at least this much for the session against `limits.max_buffered_input`; afterwards
/// it counts what the session really holds (a partial record while it arrives, nothing when
/// idle). More than this is an error, like rustls' own bound in its buffered API.
pub const HANDSHAKE_RESERVE: usize = 0xffff + 16 * 1024 + 2048 + 5;

/// Size of the worker's ciphertext buffer: two full records and their overhead, what one
/// write encrypts at most (see [`Scratch`]).
const CIPHER_SCRATCH: usize = 2 * RECORD + 4 * RECORD_OVERHEAD;

/// The worker's TLS buffers, shared by all its connections: ciphertext fresh from a socket
/// on the way in ([`TlsSession::read`]); on the way out, small queued pieces of plaintext
/// joined for one record and the records made before the socket takes them
/// ([`TlsSession::writer`]). Nothing is kept in them between calls.
pub struct Scratch {
    cipher: Vec<u8>,
    join: Vec<u8>,
}

impl Scratch {
    /// The buffers, allocated once per worker.
    pub fn new() -> Scratch {
        Scratch {
            cipher: vec![0; CIPHER_SCRATCH],
            join: Vec::with_capacity(2 * RECORD),
        }
    }
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch::new()
    }
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scratch")
    }
}

/// What one [`TlsSession::read`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    /// This many decrypted bytes; fewer than the buffer holds means the socket is drained, none
    /// the end of the stream.
    Bytes(usize),
    /// This many decrypted bytes (maybe none), and the read stopped at its budget of
    /// ciphertext or of records without data: the socket may hold more, to be read in a
    /// later turn.
    Spent(usize),
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The TLS handshake is running.
    Handshake,
    /// The handshake is done; the worker has not been told yet.
    Established,
    /// The handshake is done and the worker knows.
    Announced,
    /// The peer sent close_notify: reads end (after what was decrypted before it).
    PeerClosed,
    /// A TLS error ended the session (logged once).
    Failed,
}

/// Records without data (empty ones, key updates, warning alerts) one read works through at
/// most: rustls allows 32 in a row between two records of data, and a key update costs new
/// keys both ways (some 10-30 us each on the shared test machine), so a flood of them would
/// otherwise make one read of [`CIPHER_SCRATCH`] bytes take tens of milliseconds.
const DATALESS_RECORDS: usize = 32;

/// Where the first complete TLS records of `input` end, at most `max` of them (and at most
/// [`DATALESS_RECORDS`]): `(ends, how many)`. Read from the record headers alone, before
/// rustls decrypts anything in place.
fn record_ends(input: &[u8], max: usize) -> ([usize; DATALESS_RECORDS], usize) {
    let mut ends = [0; DATALESS_RECORDS];
    let (mut n, mut pos) = (0, 0);
    while n < max.min(DATALESS_RECORDS) && pos + 5 <= input.len() {
        let len = u16::from_be_bytes([input[pos + 3], input[pos + 4]]) as usize;
        if pos + 5 + len > input.len() {
            break;
        }
        pos += 5 + len;
        ends[n] = pos;
        n += 1;
    }
    (ends, n)
}

/// What processing the input asked for next.
enum Next {
    /// Process again (a record was decrypted or handshake bytes were queued).
    Again,
    /// The input holds no complete record: read the socket.
    Input,
    /// The peer closed the session cleanly.
    Closed,
    /// A TLS error.
    Fail(rustls::Error),
}

/// The TLS state of one connection.
pub struct TlsSession {
    conn: UnbufferedServerConnection,
    stage: Stage,
    /// The worker counts at least [`HANDSHAKE_RESERVE`] for this session (until it is told
    /// the handshake is done).
    reserved: bool,
    /// Undecrypted input carried over between reads (from `inb_at`): a partial record, or
    /// records left when the caller's buffer filled up. Empty and unallocated when idle.
    inb: Vec<u8>,
    inb_at: usize,
    /// Decrypted bytes that did not fit the caller's buffer, handed out first next time.
    plain: Vec<u8>,
    /// Encrypted bytes waiting for the socket (from `out_at`); freed once written.
    out: Vec<u8>,
    out_at: usize,
    /// What the worker counts for this session against `limits.max_buffered_input`.
    counted: usize,
}

impl fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSession")
            .field("stage", &self.stage)
            .field("inb", &(self.inb.len() - self.inb_at))
            .field("plain", &self.plain.len())
            .field("out", &(self.out.len() - self.out_at))
            .finish()
    }
}

impl TlsSession {
    /// A server session with `config`.
    pub(super) fn new(config: Arc<rustls::ServerConfig>) -> Result<TlsSession, rustls::Error> {
        Ok(TlsSession {
            conn: UnbufferedServerConnection::new(config)?,
            stage: Stage::Handshake,
            reserved: true,
            inb: Vec::new(),
            inb_at: 0,
            plain: Vec::new(),
            out: Vec::new(),
            out_at: 0,
            counted: HANDSHAKE_RESERVE,
        })
    }

    /// Whether the TLS handshake is still running.
    pub fn handshaking(&self) -> bool {
        self.stage == Stage::Handshake
    }

    /// Input bytes the worker counts for this session beyond its own buffers (set by
    /// [`TlsSession::recount`]; [`HANDSHAKE_RESERVE`] at first).
    pub fn counted(&self) -> usize {
        self.counted
    }

    /// What the worker should count for this session now, as `(before, now)`: at least
    /// [`HANDSHAKE_RESERVE`] until it is told the handshake is done, then the capacity of the
    /// input and decrypted bytes it holds.
    pub fn recount(&mut self) -> (usize, usize) {
        let held = self.inb.capacity() + self.plain.capacity();
        let now = if self.reserved {
            held.max(HANDSHAKE_RESERVE)
        } else {
            held
        };
        (std::mem::replace(&mut self.counted, now), now)
    }

    /// True once, the first time it is asked after the handshake completed.
    pub fn take_established(&mut self) -> bool {
        if self.stage == Stage::Established {
            self.stage = Stage::Announced;
            self.reserved = false;
            return true;
        }
        false
    }

    /// Whether encrypted bytes (handshake answers, alerts, records) wait for the socket.
    pub fn wants_write(&self) -> bool {
        self.out_at < self.out.len()
    }

    /// `TLSv1_3` / `TLSv1_2` once negotiated, for `kefu connections`.
    pub fn version_name(&self) -> &'static str {
        match self.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        }
    }

    /// Read decrypted bytes into `buf`, ciphertext going through the worker's `scratch`: the
    /// socket is read until `buf` is full or it has nothing more, so a short [`Got::Bytes`]
    /// means the socket is drained (the caller's edge-triggered loop relies on that) and
    /// `Bytes(0)` is the end of the stream. At most about one and a half `buf` of ciphertext
    /// and [`DATALESS_RECORDS`] records without data are worked through per call, whatever
    /// they decrypt to ([`Got::Spent`]). A TLS error is logged once
    /// (debug, with `peer`), its alert sent if the socket takes it, and returned as
    /// `InvalidData`.
    pub fn read<S: Read + Write>(
        &mut self,
        sock: &mut S,
        buf: &mut [u8],
        scratch: &mut Scratch,
        peer: SocketAddr,
    ) -> io::Result<Got> {
        let cipher = &mut scratch.cipher[..];
        let mut filled = self.take_plain(buf);
        // Records without data decrypt to nothing: the bound is on what is read, not on what
        // it gives.
        let budget = buf.len() + buf.len() / 2;
        let mut taken = 0;
        // Records rustls took that gave no data; they may cost far more than their size.
        let mut dataless = 0;
        // Fresh ciphertext in `cipher[at..end]`, used while `inb` is empty (no copy).
        let (mut at, mut end) = (0, 0);
        loop {
            match self.stage {
                Stage::Failed => return Err(io::ErrorKind::InvalidData.into()),
                Stage::PeerClosed => return Ok(Got::Bytes(filled)),
                _ => {}
            }
            if filled == buf.len() {
                self.keep(&cipher[at..end]);
                return Ok(Got::Bytes(filled));
            }
            if dataless >= DATALESS_RECORDS {
                self.keep(&cipher[at..end]);
                self.trim();
                return Ok(Got::Spent(filled));
            }
            let from_inb = self.inb_at < self.inb.len();
            let input: &mut [u8] = if from_inb {
                &mut self.inb[self.inb_at..]
            } else {
                &mut cipher[at..end]
            };
            // After the handshake rustls is given only as many records as may still be
            // without data: it works through those in one call.
            let (ends, n) = if self.stage == Stage::Handshake {
                ([0; DATALESS_RECORDS], 0)
            } else {
                record_ends(input, DATALESS_RECORDS - dataless)
            };
            let cut = n == DATALESS_RECORDS - dataless && ends[n - 1] < input.len();
            let input = if cut {
                &mut input[..ends[n - 1]]
            } else {
                input
            };
            let mut popped = 0;
            let status = self.conn.process_tls_records(input);
            let discard = status.discard;
            let mut next = match status.state {
                Err(e) => Next::Fail(e),
                Ok(ConnectionState::ReadTraffic(mut rt)) => {
                    let mut next = Next::Again;
                    while filled < buf.len() {
                        match rt.next_record() {
                            None => break,
                            Some(Err(e)) => {
                                next = Next::Fail(e);
                                break;
                            }
                            Some(Ok(rec)) => {
                                popped += 1;
                                let n = rec.payload.len().min(buf.len() - filled);
                                buf[filled..filled + n].copy_from_slice(&rec.payload[..n]);
                                filled += n;
                                // Only when `buf` is smaller than a record.
                                self.plain.extend_from_slice(&rec.payload[n..]);
                            }
                        }
                    }
                    next
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    match append(&mut self.out, 1024, |b| e.encode(b), encode_need) {
                        Ok(_) => Next::Again,
                        Err(e) => Next::Fail(rustls::Error::General(e.to_string())),
                    }
                }
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    // The bytes are in `out`, which the flush sends: rustls is done with them.
                    t.done();
                    Next::Again
                }
                Ok(ConnectionState::BlockedHandshake) | Ok(ConnectionState::WriteTraffic(_)) => {
                    Next::Input
                }
                Ok(ConnectionState::PeerClosed) | Ok(ConnectionState::Closed) => Next::Closed,
                // Early data is not enabled, and future states are not understood.
                Ok(_) => Next::Fail(rustls::Error::General("unexpected TLS state".into())),
            };
            let records = ends[..n].iter().take_while(|&&e| e <= discard).count();
            dataless += records.saturating_sub(popped);
            if cut && matches!(next, Next::Input) {
                // The rest of the records are in hand already.
                next = Next::Again;
            }
            if from_inb {
                self.inb_at += discard;
                if self.inb_at >= self.inb.len() {
                    self.inb = Vec::new();
                    self.inb_at = 0;
                }
            } else {
                at += discard;
            }
            if self.stage == Stage::Handshake && !self.conn.is_handshaking() {
                self.stage = Stage::Established;
            }
            match next {
                Next::Again => continue,
                Next::Closed => {
                    if self.stage != Stage::Failed {
                        self.stage = Stage::PeerClosed;
                    }
                    return Ok(Got::Bytes(filled));
                }
                Next::Fail(e) => {
                    crate::debug!("tls {peer}: {e}");
                    self.fail(sock);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
                Next::Input => {}
            }
            // No complete record in hand: what is left moves to `inb`, then the socket.
            self.keep(&cipher[at..end]);
            (at, end) = (0, 0);
            if taken >= budget {
                self.trim();
                return Ok(Got::Spent(filled));
            }
            let carried = self.inb.len() - self.inb_at;
            let room = (HANDSHAKE_RESERVE - carried.min(HANDSHAKE_RESERVE)).min(cipher.len());
            if room == 0 {
                crate::debug!("tls {peer}: more than {HANDSHAKE_RESERVE} bytes of one message");
                self.fail(sock);
                return Err(io::ErrorKind::InvalidData.into());
            }
            let got = sock.read(&mut cipher[..room]);
            if let Ok(n) = got {
                taken += n;
            }
            match got {
                Ok(0) => return Ok(Got::Bytes(filled)),
                Ok(n) if carried > 0 => self.keep(&cipher[..n]),
                Ok(n) => end = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled > 0 => {
                    self.trim();
                    return Ok(Got::Bytes(filled));
                }
                Err(e) => {
                    self.trim();
                    return Err(e);
                }
            }
        }
    }

    /// Move decrypted bytes held from the last read into `buf`; how many.
    fn take_plain(&mut self, buf: &mut [u8]) -> usize {
        if self.plain.is_empty() {
            return 0;
        }
        let n = self.plain.len().min(buf.len());
        buf[..n].copy_from_slice(&self.plain[..n]);
        if n == self.plain.len() {
            self.plain = Vec::new();
        } else {
            self.plain.drain(..n);
        }
        n
    }

    /// Append unprocessed ciphertext to `inb` (its consumed front dropped first).
    fn keep(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.inb_at > 0 {
            self.inb.drain(..self.inb_at);
            self.inb_at = 0;
        }
        self.inb.reserve_exact(bytes.len());
        self.inb.extend_from_slice(bytes);
    }

    /// Between reads `inb` keeps only its unconsumed bytes, in a buffer about their size.
    fn trim(&mut self) {
        if self.inb_at > 0 {
            self.inb.drain(..self.inb_at);
            self.inb_at = 0;
        }
        if self.inb.capacity() > 2 * self.inb.len() + 4096 {
            self.inb.shrink_to_fit();
        }
    }

    /// A TLS error ended the session: send the alert rustls queued if the socket takes it.
    fn fail<S: Write>(&mut self, sock: &mut S) {
        self.stage = Stage::Failed;
        self.inb = Vec::new();
        self.inb_at = 0;
        if let Ok(ConnectionState::EncodeTlsData(mut e)) =
            self.conn.process_tls_records(&mut []).state
        {
            let _ = append(&mut self.out, 64, |b| e.encode(b), encode_need);
        }
        let _ = self.push(sock);
    }

    /// Run `f` with rustls' write state, after queueing what rustls has to send first (and
    /// decrypting, into `plain`, records still held in `inb`); `None` while the handshake
    /// runs or after the session ended.
    fn traffic<R>(
        &mut self,
        f: impl FnOnce(&mut WriteTraffic<'_, ServerConnectionData>, &mut Vec<u8>) -> R,
    ) -> Option<R> {
        if self.stage == Stage::Failed {
            return None;
        }
        let mut f = Some(f);
        loop {
            let status = self.conn.process_tls_records(&mut self.inb[self.inb_at..]);
            let mut done = None;
            let go_on = match status.state {
                Ok(ConnectionState::ReadTraffic(mut rt)) => {
                    while let Some(Ok(rec)) = rt.next_record() {
                        self.plain.extend_from_slice(rec.payload);
                    }
                    true
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    append(&mut self.out, 1024, |b| e.encode(b), encode_need).is_ok()
                }
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    t.done();
                    true
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.stage = Stage::PeerClosed;
                    true
                }
                Ok(ConnectionState::WriteTraffic(mut wt)) => {
                    done = f.take().map(|f| f(&mut wt, &mut self.out));
                    false
                }
                _ => false,
            };
            self.inb_at += status.discard;
            if self.inb_at >= self.inb.len() {
                self.inb = Vec::new();
                self.inb_at = 0;
            }
            if !go_on {
                return done;
            }
        }
    }

    /// A writer that encrypts into `sock` through the worker's `scratch` (for the
    /// connection's output queue to flush into).
    pub fn writer<'a, S: Write>(
        &'a mut self,
        sock: &'a mut S,
        scratch: &'a mut Scratch,
    ) -> TlsWriter<'a, S> {
        TlsWriter {
            session: self,
            sock,
            scratch,
        }
    }

    /// Write `records` (made in the worker's scratch) after the encrypted bytes still
    /// waiting; what the socket does not take waits in `out`, the only copy on this path.
    fn send<S: Write>(&mut self, sock: &mut S, records: &[u8]) -> io::Result<()> {
        let mut at = 0;
        if !self.wants_write() || self.push(sock)? {
            while at < records.len() {
                match sock.write(&records[at..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => at += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.out.extend_from_slice(&records[at..]);
        Ok(())
    }

    /// Write queued encrypted bytes: `Ok(true)` when none are left (and the buffer is
    /// freed), `Ok(false)` when the socket is full.
    pub fn push<S: Write>(&mut self, sock: &mut S) -> io::Result<bool> {
        while self.out_at < self.out.len() {
            match sock.write(&self.out[self.out_at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out = Vec::new();
        self.out_at = 0;
        Ok(true)
    }

    /// Queue a close_notify and try to send it (best effort: the socket is shut down next).
    pub fn close_notify<S: Write>(&mut self, sock: &mut S) {
        let _ = self.traffic(|wt, out| append(out, 64, |b| wt.queue_close_notify(b), encrypt_need));
        let _ = self.push(sock);
    }
}

/// The size rustls asked for when a buffer was too small.
fn encode_need(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

/// The size rustls asked for when a buffer was too small.
fn encrypt_need(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

/// Let `f` write at the end of `out` into `guess` bytes, grown to what it says it needs.
fn append<E>(
    out: &mut Vec<u8>,
    guess: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
    need: fn(&E) -> Option<usize>,
) -> Result<usize, E> {
    let start = out.len();
    let mut size = guess;
    loop {
        out.resize(start + size, 0);
        match f(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(n);
            }
            Err(e) => match need(&e) {
                Some(n) if n > size => size = n,
                _ => {
                    out.truncate(start);
                    return Err(e);
                }
            },
        }
    }
}

/// Plaintext in, records out to the socket. A write encrypts up to two records' worth into the
/// worker's scratch and writes them from there (after pushing earlier records out when
/// [`OUT_LIMIT`] is reached); it fails with `WouldBlock` only when the socket is full and the
/// session's output too, or the handshake is not done, so the caller keeps the rest in its
/// own queue. A flush of one queued range (a turn's messages to one client) is one record,
/// one `write`, and no allocation of ours.
pub struct TlsWriter<'a, S> {
    session: &'a mut TlsSession,
    sock: &'a mut S,
    scratch: &'a mut Scratch,
}

impl<S> fmt::Debug for TlsWriter<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsWriter")
            .field("session", &self.session)
            .finish()
    }
}

impl<S: Write> Write for TlsWriter<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Ok(0);
        };
        let s = &mut *self.session;
        if s.out.len() - s.out_at >= OUT_LIMIT && !s.push(self.sock)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let bufs = &bufs[first..];
        let Scratch { cipher, join } = &mut *self.scratch;
        // Small pieces are joined into one record; a large one is encrypted where it lies.
        let data: &[u8] = if bufs.len() == 1 || bufs[0].len() >= RECORD {
            &bufs[0][..bufs[0].len().min(2 * RECORD)]
        } else {
            join.clear();
            for b in bufs {
                let n = b.len().min(2 * RECORD - join.len());
                join.extend_from_slice(&b[..n]);
                if join.len() == 2 * RECORD {
                    break;
                }
            }
            join
        };
        let made = s.traffic(|wt, out| match wt.encrypt(data, cipher) {
            Ok(n) => Ok(Some(n)),
            // Records rustls queued before (a key update) did not leave room: into `out`.
            Err(EncryptError::InsufficientSize(_)) => {
                let guess = data.len() + (data.len() / RECORD + 2) * RECORD_OVERHEAD;
                append(out, guess, |b| wt.encrypt(data, b), encrypt_need).map(|_| None)
            }
            Err(e) => Err(e),
        });
        match made {
            Some(Ok(Some(n))) => s.send(self.sock, &cipher[..n])?,
            Some(Ok(None)) => {
                s.push(self.sock)?;
            }
            Some(Err(e)) => return Err(io::Error::other(e.to_string())),
            // The handshake is not done (its end raises the next flush), or the session
            // ended.
            None => return Err(io::ErrorKind::WouldBlock.into()),
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
