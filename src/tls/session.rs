//! One TLS connection: rustls' unbuffered state machine fed from and flushed to the
//! non-blocking socket, inside the worker's loop (no thread, no blocking handshake).
//!
//! The unbuffered API leaves every buffer to us, so an idle connection holds none: ciphertext
//! is read into the worker's shared TLS scratch and decrypted from there; only what is left of
//! a partial record moves into the session's own `inb` (freed once consumed). Records are made
//! in that scratch too and written from there (`writer.rs`); only what the socket does not
//! take moves to `out`, freed once written. Everything the session holds of the
//! peer's input is reported by [`TlsSession::recount`] so the worker counts it against
//! `limits.max_buffered_input`, as it does plain input.
//!
//! Two engines protect the records: rustls from the handshake on, and, once a reload's
//! hand-over took the keys out of rustls ([`TlsSession::detach`]), our own record layer
//! (`record.rs`), which the successor resumes from the hand-over record
//! ([`TlsSession::resume`]); the buffers and the worker's view are the same for both.

use super::carry::{own_keys, DetachError, TlsCarry};
use super::record::{ContentType, RecordError, RecordLayer, TlsSecrets, Version};
pub use super::scratch::Scratch;
use super::scratch::{append, encode_need, encrypt_need, RECORD, RECORD_OVERHEAD};
pub use super::steps::Got;
use super::steps::{
    discard, guarded, records_step, rustls_step, Failure, Next, Step, DATALESS_RECORDS,
};
pub use super::writer::TlsWriter;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncryptError, WriteTraffic};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

/// Bytes of undecrypted input a session may hold: a handshake message of up to 64 KiB being
/// joined, plus the record read after it. Until the worker is told the handshake is done it
/// counts at least this much for the session against `limits.max_buffered_input`; afterwards
/// it counts what the session really holds (a partial record while it arrives, nothing when
/// idle). More than this is an error, like rustls' own bound in its buffered API.
pub const HANDSHAKE_RESERVE: usize = 0xffff + 16 * 1024 + 2048 + 5;

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
    /// On our record layer, the peer changed its keys (a TLS 1.3 KeyUpdate) and the worker
    /// has not been told: nothing after it can be read; we can still write (a close).
    Rekeyed,
    /// After `Rekeyed` was told: reads fail, writes go on until the close.
    Unreadable,
    /// A TLS error ended the session (logged once).
    Failed,
}

/// Who protects the records.
// The rustls variant is the one nearly every session has: boxing it would cost every
// connection an allocation to save memory only on the rare other ones.
#[allow(clippy::large_enum_variant)]
enum Engine {
    /// rustls: the handshake, then the traffic until a hand-over takes its keys.
    Rustls(UnbufferedServerConnection),
    /// Our record layer, with keys rustls gave up at a hand-over (boxed: only connections
    /// taken over pay for it).
    Records(Box<RecordLayer>),
    /// rustls gave up its state but not usable keys (see [`TlsSession::detach`]): nothing
    /// more can be read or sent.
    Gone,
}

/// The TLS state of one connection.
pub struct TlsSession {
    engine: Engine,
    stage: Stage,
    /// The worker counts at least [`HANDSHAKE_RESERVE`] for this session (until it is told
    /// the handshake is done).
    reserved: bool,
    /// Undecrypted input carried over between reads (from `inb_at`): a partial record, or
    /// records left when the caller's buffer filled up. Empty and unallocated when idle.
    inb: Vec<u8>,
    inb_at: usize,
    /// Bytes at the front of `inb[inb_at..]` rustls has worked through but keeps (a handshake
    /// message being joined in place): it resumes after them (see `rustls_step`).
    held: usize,
    /// Bytes at the front of `inb[inb_at..]` rustls was shown (it may have stopped inside
    /// them): the least it may be handed again, the most a write hands it.
    seen: usize,
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
            engine: Engine::Rustls(UnbufferedServerConnection::new(config)?),
            stage: Stage::Handshake,
            reserved: true,
            inb: Vec::new(),
            inb_at: 0,
            held: 0,
            seen: 0,
            plain: Vec::new(),
            out: Vec::new(),
            out_at: 0,
            counted: HANDSHAKE_RESERVE,
        })
    }

    /// The session a predecessor handed over, on our record layer. Its buffers are bounded
    /// like a live session's: the undecrypted input by [`HANDSHAKE_RESERVE`].
    pub fn resume(carry: TlsCarry) -> Result<TlsSession, RecordError> {
        if carry.unread.len() > HANDSHAKE_RESERVE {
            return Err(RecordError::Oversized(carry.unread.len()));
        }
        let TlsCarry {
            secrets,
            unread,
            plain,
            unsent,
        } = carry;
        Ok(TlsSession {
            engine: Engine::Records(Box::new(RecordLayer::new(secrets)?)),
            stage: Stage::Announced,
            reserved: false,
            inb: unread,
            inb_at: 0,
            held: 0,
            seen: 0,
            plain,
            out: unsent,
            out_at: 0,
            counted: 0,
        })
    }

    /// Switch an established session from rustls to our record layer, with the keys and
    /// sequence numbers rustls gives up (a reload's hand-over, before [`Self::carry`]). What
    /// rustls still had to send is queued first; a session already on our layer stays.
    pub fn detach(&mut self) -> Result<(), DetachError> {
        if !matches!(self.engine, Engine::Rustls(_)) {
            return Ok(());
        }
        if self.stage != Stage::Announced {
            return Err(DetachError::NotEstablished);
        }
        // rustls refuses while it holds records to send (session tickets after the handshake).
        let _ = self.traffic(|_, _| ());
        let Engine::Rustls(conn) = std::mem::replace(&mut self.engine, Engine::Gone) else {
            return Ok(());
        };
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => Version::Tls12,
            _ => Version::Tls13,
        };
        let detached = conn
            .dangerous_into_kernel_connection()
            .map_err(DetachError::Tls)
            .and_then(|(s, _)| {
                let (suite, tx) = own_keys(s.tx)?;
                let (_, rx) = own_keys(s.rx)?;
                RecordLayer::new(TlsSecrets {
                    version,
                    suite,
                    tx,
                    rx,
                })
                .map_err(DetachError::Record)
            });
        match detached {
            Ok(layer) => {
                self.engine = Engine::Records(Box::new(layer));
                Ok(())
            }
            Err(e) => {
                self.stage = Stage::Failed;
                Err(e)
            }
        }
    }

    /// Whether the session can go to a reload's successor: established, on our record
    /// layer.
    pub fn movable(&self) -> bool {
        matches!(self.engine, Engine::Records(_)) && self.stage == Stage::Announced
    }

    /// The session for a reload's successor ([`Self::resume`] takes it back); `None` unless
    /// [`Self::movable`].
    pub fn carry(&self) -> Option<TlsCarry> {
        match &self.engine {
            Engine::Records(layer) if self.stage == Stage::Announced => Some(TlsCarry {
                secrets: layer.secrets().clone(),
                unread: self.inb[self.inb_at..].to_vec(),
                plain: self.plain.clone(),
                unsent: self.out[self.out_at..].to_vec(),
            }),
            _ => None,
        }
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

    /// True once, the first time it is asked after the peer changed its keys on our record
    /// layer (a TLS 1.3 KeyUpdate, which it cannot follow): the worker then closes the
    /// connection with 1012 (we can still write), so the client reconnects.
    pub fn take_rekeyed(&mut self) -> bool {
        if self.stage == Stage::Rekeyed {
            self.stage = Stage::Unreadable;
            return true;
        }
        false
    }

    /// Whether encrypted bytes (handshake answers, alerts, records) wait for the socket.
    pub fn wants_write(&self) -> bool {
        self.out_at < self.out.len()
    }

    /// How many encrypted bytes wait for the socket.
    pub(super) fn waiting(&self) -> usize {
        self.out.len() - self.out_at
    }

    /// `TLSv1_3` / `TLSv1_2` once negotiated, for `kefu connections`.
    pub fn version_name(&self) -> &'static str {
        let v = match &self.engine {
            Engine::Rustls(conn) => match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => Some(Version::Tls13),
                Some(rustls::ProtocolVersion::TLSv1_2) => Some(Version::Tls12),
                _ => None,
            },
            Engine::Records(layer) => Some(layer.version()),
            Engine::Gone => None,
        };
        match v {
            Some(Version::Tls13) => "TLSv1.3",
            Some(Version::Tls12) => "TLSv1.2",
            None => "TLS",
        }
    }

    /// Read decrypted bytes into `buf`, ciphertext going through the worker's `scratch`: the
    /// socket is read until `buf` is full or it has nothing more, so a short [`Got::Bytes`]
    /// means the socket is drained (the caller's edge-triggered loop relies on that) and
    /// `Bytes(0)` is the end of the stream. At most about one and a half `buf` of ciphertext
    /// and 32 records without data (`DATALESS_RECORDS`) are worked through per call, whatever
    /// they decrypt to ([`Got::Spent`]). A TLS error is logged once (debug, with `peer`), its
    /// alert sent if the socket takes it, and returned as `InvalidData`. After a KeyUpdate on
    /// our record layer the bytes before it are returned (or `WouldBlock`) and
    /// [`Self::take_rekeyed`] says so; later reads fail.
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
        // it gives, and on those records (they may cost far more than their size).
        let budget = buf.len() + buf.len() / 2;
        let (mut taken, mut dataless) = (0, 0);
        // Fresh ciphertext in `cipher[at..end]`, used while `inb` is empty (no copy).
        let (mut at, mut end) = (0, 0);
        loop {
            match self.stage {
                Stage::Failed => return Err(io::ErrorKind::InvalidData.into()),
                Stage::Unreadable | Stage::Rekeyed => return discard(sock, cipher),
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
            let step = match &mut self.engine {
                Engine::Rustls(conn) => guarded(|| {
                    rustls_step(
                        conn,
                        input,
                        &mut self.held,
                        &mut self.seen,
                        buf,
                        &mut filled,
                        &mut self.plain,
                        &mut self.out,
                        DATALESS_RECORDS - dataless,
                    )
                })
                .unwrap_or_else(|e| Step {
                    next: Next::Fail(e),
                    used: 0,
                    dataless: 0,
                }),
                Engine::Records(layer) => {
                    records_step(layer, input, buf, &mut filled, &mut self.plain)
                }
                Engine::Gone => Step {
                    next: Next::Fail(Failure::Record(RecordError::BadKey)),
                    used: 0,
                    dataless: 0,
                },
            };
            let Step {
                next,
                used,
                dataless: none,
            } = step;
            dataless += none;
            if from_inb {
                self.inb_at += used;
                if self.inb_at >= self.inb.len() {
                    self.inb = Vec::new();
                    self.inb_at = 0;
                }
            } else {
                at += used;
            }
            if let Engine::Rustls(conn) = &self.engine {
                if self.stage == Stage::Handshake && !conn.is_handshaking() {
                    self.stage = Stage::Established;
                }
            }
            match next {
                Next::Again => continue,
                Next::Closed => {
                    if self.stage != Stage::Failed {
                        self.stage = Stage::PeerClosed;
                    }
                    return Ok(Got::Bytes(filled));
                }
                Next::Rekeyed => {
                    // What follows is under keys we cannot derive: drop it.
                    self.stage = Stage::Rekeyed;
                    self.inb = Vec::new();
                    self.inb_at = 0;
                    self.held = 0;
                    self.seen = 0;
                    crate::debug!("tls {peer}: KeyUpdate on a session taken over at a reload");
                    if filled > 0 {
                        return Ok(Got::Bytes(filled));
                    }
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Next::Fail(e) => {
                    crate::debug!("tls {peer}: {e}");
                    if matches!(e, Failure::Panicked) {
                        // Its state is not trusted: no alert from it, no call into it again.
                        self.engine = Engine::Gone;
                    }
                    // All of the input rustls saw goes to `inb` for `fail`.
                    self.keep(&cipher[at..end]);
                    self.fail(sock, e.alert());
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
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
                self.fail(sock, 22);
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

    /// A TLS error ended the session: send the alert rustls queued (on our record layer, a
    /// fatal alert `description`) if the socket takes it.
    fn fail<S: Write>(&mut self, sock: &mut S, description: u8) {
        self.stage = Stage::Failed;
        match &mut self.engine {
            Engine::Rustls(conn) => {
                // rustls resumes where it stopped in the last input it saw (after the records
                // it keeps, which an error may leave uncounted in `held`): hand it all that is
                // left of that input, never less (it would panic). It sends its alert first;
                // without one it reads on until it has a record to hand out or refuses one
                // (32 without data at most, its own limits).
                let inb = &mut self.inb[self.inb_at..];
                let out = &mut self.out;
                let sent = guarded(|| {
                    if let Ok(ConnectionState::EncodeTlsData(mut e)) =
                        conn.process_tls_records(inb).state
                    {
                        let _ = append(out, 64, |b| e.encode(b), encode_need);
                    }
                });
                if sent.is_err() {
                    self.engine = Engine::Gone;
                }
            }
            Engine::Records(layer) => {
                let _ = layer.seal(ContentType::Alert, &[2, description], &mut self.out);
            }
            Engine::Gone => {}
        }
        self.inb = Vec::new();
        self.inb_at = 0;
        self.held = 0;
        self.seen = 0;
        let _ = self.push(sock);
    }

    /// Run `f` with rustls' write state, after queueing what rustls has to send first (and
    /// moving into `plain` what it decrypted and the last read left with it); `None` while the
    /// handshake runs or after the session ended. Records still unread in `inb` are left to
    /// the reads: rustls is given only what the last read showed it (at most that read's
    /// bounded slice), so a write opens no record beyond it (a flush after a read that
    /// stopped at its bound would otherwise work through all the rest, unbounded, and out of
    /// the reader's sight).
    fn traffic<R>(
        &mut self,
        f: impl FnOnce(&mut WriteTraffic<'_, ServerConnectionData>, &mut Vec<u8>) -> R,
    ) -> Option<R> {
        let Engine::Rustls(conn) = &mut self.engine else {
            return None;
        };
        if self.stage == Stage::Failed {
            return None;
        }
        let mut f = Some(f);
        loop {
            let end = (self.inb_at + self.seen).min(self.inb.len());
            let inb = &mut self.inb[self.inb_at..end];
            let (plain, out, f) = (&mut self.plain, &mut self.out, &mut f);
            let turn = guarded(|| {
                let status = conn.process_tls_records(inb);
                let mut done = None;
                let mut closed = false;
                let go_on = match status.state {
                    Ok(ConnectionState::ReadTraffic(mut rt)) => {
                        while let Some(Ok(rec)) = rt.next_record() {
                            plain.extend_from_slice(rec.payload);
                        }
                        true
                    }
                    Ok(ConnectionState::EncodeTlsData(mut e)) => {
                        append(out, 1024, |b| e.encode(b), encode_need).is_ok()
                    }
                    Ok(ConnectionState::TransmitTlsData(t)) => {
                        t.done();
                        true
                    }
                    Ok(ConnectionState::PeerClosed) => {
                        closed = true;
                        true
                    }
                    Ok(ConnectionState::WriteTraffic(mut wt)) => {
                        done = f.take().map(|f| f(&mut wt, out));
                        false
                    }
                    _ => false,
                };
                (status.discard, go_on, done, closed)
            });
            let Ok((discard, go_on, done, closed)) = turn else {
                crate::debug!("tls: rustls panicked in a write; session dropped");
                self.engine = Engine::Gone;
                self.stage = Stage::Failed;
                return None;
            };
            if closed {
                self.stage = Stage::PeerClosed;
            }
            self.inb_at += discard;
            self.held = self.held.saturating_sub(discard);
            self.seen = self.seen.saturating_sub(discard);
            if self.inb_at >= self.inb.len() {
                self.inb = Vec::new();
                self.inb_at = 0;
                self.held = 0;
                self.seen = 0;
            }
            if !go_on {
                return done;
            }
        }
    }

    /// Encrypt `data` (at most two records) into the worker's scratch (`cipher`, or `sealed`
    /// on our record layer): the records made there, or none when rustls put them in `out`
    /// (records it queued before, a key update's, left no room); `None` while the handshake
    /// runs or after the session ended.
    pub(super) fn encrypt<'s>(
        &mut self,
        data: &[u8],
        cipher: &'s mut [u8],
        sealed: &'s mut Vec<u8>,
    ) -> Option<io::Result<&'s [u8]>> {
        if let Engine::Records(layer) = &mut self.engine {
            if self.stage == Stage::Failed {
                return None;
            }
            sealed.clear();
            return Some(match layer.seal_data(data, sealed) {
                Ok(()) => Ok(sealed),
                Err(e) => Err(io::Error::other(e)),
            });
        }
        let made = self.traffic(|wt, out| match wt.encrypt(data, cipher) {
            Ok(n) => Ok(Some(n)),
            Err(EncryptError::InsufficientSize(_)) => {
                let guess = data.len() + (data.len() / RECORD + 2) * RECORD_OVERHEAD;
                append(out, guess, |b| wt.encrypt(data, b), encrypt_need).map(|_| None)
            }
            Err(e) => Err(e),
        })?;
        let cipher: &'s [u8] = cipher;
        Some(match made {
            Ok(Some(n)) => Ok(&cipher[..n]),
            Ok(None) => Ok(&[]),
            Err(e) => Err(io::Error::other(e.to_string())),
        })
    }

    /// A writer that encrypts into `sock` through the worker's `scratch` (for the
    /// connection's output queue to flush into).
    pub fn writer<'a, S: Write>(
        &'a mut self,
        sock: &'a mut S,
        scratch: &'a mut Scratch,
    ) -> TlsWriter<'a, S> {
        TlsWriter::new(self, sock, scratch)
    }

    /// Write `records` (made in the worker's scratch) after the encrypted bytes still
    /// waiting; what the socket does not take waits in `out`, the only copy on this path.
    pub(super) fn send<S: Write>(&mut self, sock: &mut S, records: &[u8]) -> io::Result<()> {
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
        if let Engine::Records(layer) = &mut self.engine {
            if self.stage != Stage::Failed {
                let _ = layer.seal(ContentType::Alert, &[1, 0], &mut self.out);
            }
        } else {
            let _ =
                self.traffic(|wt, out| append(out, 64, |b| wt.queue_close_notify(b), encrypt_need));
        }
        let _ = self.push(sock);
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
