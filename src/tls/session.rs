//! One TLS connection: rustls fed from and flushed to the non-blocking socket, inside the
//! worker's loop (no thread, no blocking handshake).
//!
//! Bounds: rustls holds at most one handshake message of 64 KiB (or one record of about
//! 18 KiB once established) of undecrypted input and at most 16 KiB of decrypted input, which
//! is handed on at once; its output queue is capped at [`OUT_LIMIT`] bytes, the rest of a
//! backlog waiting in the connection's own queue, where the send bound applies.

use rustls::ServerConnection;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

/// Most bytes of encrypted output rustls queues for one connection (a few records): beyond
/// it the plaintext waits in the connection's own output queue, counted against
/// `max_send_buffer`, and rustls' chunks are freed as soon as they are written.
const OUT_LIMIT: usize = 32 * 1024;

/// Bytes a connection still in its TLS handshake may make rustls hold: a handshake message
/// of up to 64 KiB being joined, plus the record read after it. The worker counts this
/// against `limits.max_buffered_input` until the handshake is done.
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
    /// A TLS error ended the session (logged once).
    Failed,
}

/// The TLS state of one connection.
#[derive(Debug)]
pub struct TlsSession {
    conn: ServerConnection,
    stage: Stage,
    /// The worker counts [`HANDSHAKE_RESERVE`] for this session (until it is told the
    /// handshake is done).
    reserved: bool,
}

impl TlsSession {
    /// A server session with `config`.
    pub(super) fn new(config: Arc<rustls::ServerConfig>) -> Result<TlsSession, rustls::Error> {
        let mut conn = ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(OUT_LIMIT));
        Ok(TlsSession {
            conn,
            stage: Stage::Handshake,
            reserved: true,
        })
    }

    /// Whether the TLS handshake is still running.
    pub fn handshaking(&self) -> bool {
        self.stage == Stage::Handshake
    }

    /// Input bytes the worker counts for this session beyond its own buffers:
    /// [`HANDSHAKE_RESERVE`] until the worker is told the handshake is done, then nothing
    /// (rustls then holds at most one record, a partial one only while it arrives).
    pub fn reserve(&self) -> usize {
        if self.reserved {
            HANDSHAKE_RESERVE
        } else {
            0
        }
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
        self.conn.wants_write()
    }

    /// `TLSv1_3` / `TLSv1_2` once negotiated, for `kefu connections`.
    pub fn version_name(&self) -> &'static str {
        match self.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        }
    }

    /// Read decrypted bytes into `buf`: ciphertext is read from `sock` until `buf` is full or
    /// the socket has nothing more, so a short count means the socket is drained (the caller's
    /// edge-triggered loop relies on that). `Ok(0)` is the end of the stream. A TLS error is
    /// logged once (debug, with `peer`), its alert queued, and returned as `InvalidData`.
    pub fn read<S: Read + Write>(
        &mut self,
        sock: &mut S,
        buf: &mut [u8],
        peer: SocketAddr,
    ) -> io::Result<usize> {
        if self.stage == Stage::Failed {
            return Err(io::ErrorKind::InvalidData.into());
        }
        let mut filled = 0;
        loop {
            match self.conn.reader().read(&mut buf[filled..]) {
                // The peer's close_notify (or a full `buf`, checked below).
                Ok(0) if filled < buf.len() => return Ok(filled),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        return Ok(filled);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket ended without close_notify: what was decrypted still counts.
                Err(e) => return if filled > 0 { Ok(filled) } else { Err(e) },
            }
            match self.conn.read_tls(sock) {
                Ok(0) => return Ok(filled),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    // rustls' input bound (an oversized handshake message or record).
                    crate::debug!("tls {peer}: {e}");
                    self.stage = Stage::Failed;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                crate::debug!("tls {peer}: {e}");
                self.stage = Stage::Failed;
                // Best effort: the alert rustls queued tells the peer why.
                let _ = self.conn.write_tls(sock);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            if self.stage == Stage::Handshake && !self.conn.is_handshaking() {
                self.stage = Stage::Established;
            }
        }
    }

    /// A writer that encrypts into `sock` (for the connection's output queue to flush into).
    pub fn writer<'a, S: Write>(&'a mut self, sock: &'a mut S) -> TlsWriter<'a, S> {
        TlsWriter {
            conn: &mut self.conn,
            sock,
        }
    }

    /// Write queued encrypted bytes: `Ok(true)` when none are left, `Ok(false)` when the
    /// socket is full.
    pub fn push<S: Write>(&mut self, sock: &mut S) -> io::Result<bool> {
        push(&mut self.conn, sock)
    }

    /// Queue a close_notify and try to send it (best effort: the socket is shut down next).
    pub fn close_notify<S: Write>(&mut self, sock: &mut S) {
        self.conn.send_close_notify();
        let _ = push(&mut self.conn, sock);
    }
}

fn push<S: Write>(conn: &mut ServerConnection, sock: &mut S) -> io::Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Plaintext in, records out to the socket. A write takes what rustls' capped queue accepts
/// (after pushing earlier records out) and fails with `WouldBlock` only when the socket is
/// full and the queue too, so the caller keeps the rest in its own queue.
#[derive(Debug)]
pub struct TlsWriter<'a, S> {
    conn: &'a mut ServerConnection,
    sock: &'a mut S,
}

impl<S: Write> Write for TlsWriter<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        for _ in 0..2 {
            let n = self.conn.writer().write_vectored(bufs)?;
            if n > 0 {
                // Records out now where the socket takes them; the rest goes with the next
                // write or the caller's final push.
                push(self.conn, self.sock)?;
                return Ok(n);
            }
            // rustls' queue is full: make room or report the socket full.
            if !push(self.conn, self.sock)? {
                break;
            }
        }
        // Still no room: the socket is full, or the handshake is not done and its plaintext
        // queue is (the handshake's end raises the next flush).
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
