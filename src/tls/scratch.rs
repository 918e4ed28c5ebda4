//! The worker's TLS buffers, shared by all its connections ([`Scratch`]), and growing a buffer
//! to what rustls asks for ([`append`]).

use rustls::unbuffered::{EncodeError, EncryptError};
use std::fmt;

/// Largest TLS plaintext fragment: one record's worth of output is encrypted at a time.
pub(super) const RECORD: usize = 16 * 1024;

/// Bytes of record overhead allowed per record when sizing an encryption (header, nonce,
/// tag and content type together are under 40 bytes for every suite rustls offers).
pub(super) const RECORD_OVERHEAD: usize = 64;

/// Size of the worker's ciphertext buffer: two full records and their overhead, what one
/// write encrypts at most (see [`Scratch`]).
pub(super) const CIPHER_SCRATCH: usize = 2 * RECORD + 4 * RECORD_OVERHEAD;

/// The worker's TLS buffers, shared by all its connections: ciphertext fresh from a socket
/// on the way in (`TlsSession::read`); on the way out, small queued pieces of plaintext
/// joined (two records' worth at most) and the records made before the socket takes them
/// (`TlsSession::writer`). Nothing is kept in them between calls.
pub struct Scratch {
    /// Ciphertext read, or records rustls made.
    pub(super) cipher: Vec<u8>,
    /// Small pieces of plaintext joined.
    pub(super) join: Vec<u8>,
    /// Records our record layer made (it appends to a `Vec`).
    pub(super) sealed: Vec<u8>,
}

impl Scratch {
    /// The buffers, allocated once per worker.
    pub fn new() -> Scratch {
        Scratch {
            cipher: vec![0; CIPHER_SCRATCH],
            join: Vec::with_capacity(2 * RECORD),
            sealed: Vec::with_capacity(CIPHER_SCRATCH),
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

/// The size rustls asked for when a buffer was too small.
pub(super) fn encode_need(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

/// The size rustls asked for when a buffer was too small.
pub(super) fn encrypt_need(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

/// Let `f` write at the end of `out` into `guess` bytes, grown to what it says it needs.
pub(super) fn append<E>(
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
