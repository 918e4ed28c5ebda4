//! Plaintext in, records out: the writer a connection's output queue flushes into
//! ([`TlsWriter`], from `TlsSession::writer`), encrypting into the worker's TLS scratch.

use super::scratch::{Scratch, RECORD};
use super::session::TlsSession;
use std::fmt;
use std::io::{self, IoSlice, Write};

/// Most bytes of encrypted output a session holds for its socket (a few records): beyond it
/// the plaintext waits in the connection's own output queue, counted against
/// `max_send_buffer`.
const OUT_LIMIT: usize = 32 * 1024;

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

impl<'a, S> TlsWriter<'a, S> {
    /// A writer for `session`'s records to `sock`, made in `scratch`.
    pub(super) fn new(
        session: &'a mut TlsSession,
        sock: &'a mut S,
        scratch: &'a mut Scratch,
    ) -> TlsWriter<'a, S> {
        TlsWriter {
            session,
            sock,
            scratch,
        }
    }
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
        if s.waiting() >= OUT_LIMIT && !s.push(self.sock)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let bufs = &bufs[first..];
        let Scratch {
            cipher,
            join,
            sealed,
        } = &mut *self.scratch;
        // Small pieces are joined (up to two records' worth); a large one is encrypted where
        // it lies.
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
        match s.encrypt(data, cipher, sealed) {
            // Out now where the socket takes them; the rest goes with the next write or the
            // caller's final push.
            Some(Ok(records)) => s.send(self.sock, records)?,
            Some(Err(e)) => return Err(e),
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
