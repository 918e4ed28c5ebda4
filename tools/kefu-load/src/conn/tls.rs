//! The TLS leg of a connection: ciphertext in and out through rustls.

use super::CloseReason;
use std::io::{self, Read, Write};

/// One TLS read: ciphertext from `sock` into rustls, the plaintext it yields appended to
/// `rbuf`. `Ok((n, false))` with `n` the ciphertext bytes read (0: end of stream, or the
/// server's close_notify); a TLS error closes the connection.
pub(super) fn tls_read(
    t: &mut rustls::ClientConnection,
    sock: &mut mio::net::TcpStream,
    scratch: &mut [u8],
    rbuf: &mut Vec<u8>,
) -> Result<io::Result<(usize, bool)>, CloseReason> {
    let n = match t.read_tls(sock) {
        Ok(n) => n,
        Err(e) => return Ok(Err(e)),
    };
    t.process_new_packets().map_err(CloseReason::Tls)?;
    loop {
        match t.reader().read(scratch) {
            Ok(0) => return Ok(Ok((0, false))),
            Ok(k) => rbuf.extend_from_slice(&scratch[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Ok(Err(e)),
        }
    }
    // rustls reads in small pieces: only WouldBlock says the socket is drained.
    Ok(Ok((n, false)))
}

/// Plaintext from `wbuf` into rustls (as much as its capped queue takes, once the handshake
/// is done), then records to the socket until it is full.
pub(super) fn flush_tls(
    t: &mut rustls::ClientConnection,
    sock: &mut mio::net::TcpStream,
    wbuf: &mut Vec<u8>,
    wpos: &mut usize,
) -> io::Result<()> {
    loop {
        if !t.is_handshaking() && *wpos < wbuf.len() {
            *wpos += t.writer().write(&wbuf[*wpos..])?;
            if *wpos == wbuf.len() {
                wbuf.clear();
                *wpos = 0;
            }
        }
        if !t.wants_write() {
            return Ok(());
        }
        match t.write_tls(sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
