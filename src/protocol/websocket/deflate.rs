//! The permessage-deflate codec (RFC 7692 §7.2): one message in, one message out, no context
//! taken over between messages. No I/O here.
//!
//! Both halves are meant to be shared by every connection of a worker: they are reset before
//! each message, so a connection holds no compression state of its own.

use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::extensions::MAX_WINDOW_BITS;

/// The empty stored block every compressed message ends with, removed by the sender (§7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output buffers larger than this are given back after the message rather than kept.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message passes the size limit (close 1009); detected while inflating.
    TooBig,
    /// The payload is not a valid DEFLATE stream (close 1007).
    Corrupt,
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InflateError::TooBig => "inflated message over the size limit",
            InflateError::Corrupt => "invalid deflate data",
        })
    }
}

impl std::error::Error for InflateError {}

/// Inflates whole messages with a 15-bit window, which reads any window size a client uses.
pub struct Inflater {
    z: Decompress,
    out: Vec<u8>,
}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("out_capacity", &self.out.capacity())
            .finish()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Inflater {
    /// A fresh inflater.
    pub fn new() -> Inflater {
        Inflater {
            z: Decompress::new_with_window_bits(false, MAX_WINDOW_BITS),
            out: Vec::new(),
        }
    }

    /// Inflate one message (all its frames' payloads joined) into at most `limit` bytes.
    ///
    /// The output grows in steps and never beyond `limit + 1` bytes, so a small payload that
    /// inflates to gigabytes (a decompression bomb) costs at most the limit in memory and is
    /// stopped as soon as it passes it.
    pub fn inflate(&mut self, payload: &[u8], limit: usize) -> Result<&[u8], InflateError> {
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        }
        self.out.clear();
        self.z.reset(false);
        let cap = limit.saturating_add(1);
        for input in [payload, &TAIL[..]] {
            let mut input = input;
            loop {
                if self.out.len() == self.out.capacity() {
                    if self.out.len() >= cap {
                        return Err(InflateError::TooBig);
                    }
                    let want = (self.out.len().max(payload.len() * 2).max(1024)).min(cap);
                    let grow = want.min(cap - self.out.len());
                    self.out.reserve_exact(grow);
                }
                let before_in = self.z.total_in();
                let before_out = self.z.total_out();
                let status = self
                    .z
                    .decompress_vec(input, &mut self.out, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Corrupt)?;
                let used = (self.z.total_in() - before_in) as usize;
                let progress = used > 0 || self.z.total_out() > before_out;
                input = input.get(used..).unwrap_or_default();
                if self.out.len() > limit {
                    return Err(InflateError::TooBig);
                }
                // A final block ends the stream; whatever follows it is ignored.
                if status == Status::StreamEnd {
                    return Ok(&self.out);
                }
                // zlib stops only when it runs out of input or of room: with room left, this
                // piece of input is used up (or, with no progress at all, unusable).
                if self.out.len() < self.out.capacity() && (input.is_empty() || !progress) {
                    break;
                }
            }
        }
        Ok(&self.out)
    }
}

/// Compresses whole messages with one window size, for every receiver that agreed on it.
pub struct Deflater {
    z: Compress,
    window_bits: u8,
}

impl fmt::Debug for Deflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflater")
            .field("window_bits", &self.window_bits)
            .finish()
    }
}

impl Deflater {
    /// A compressor at `level` (0-9) with a `window_bits` window (9..=15; zlib's raw deflate
    /// has no 8-bit window, so callers send such receivers uncompressed messages instead).
    pub fn new(level: u32, window_bits: u8) -> Deflater {
        let bits = window_bits.clamp(9, MAX_WINDOW_BITS);
        Deflater {
            z: Compress::new_with_window_bits(Compression::new(level.min(9)), false, bits),
            window_bits: bits,
        }
    }

    /// The window size this compressor uses.
    pub fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Append the compressed form of `msg` (without the 4-byte tail, §7.2.1) to `out`;
    /// false (and `out` as it was) if zlib failed, in which case the message goes uncompressed.
    pub fn deflate(&mut self, msg: &[u8], out: &mut Vec<u8>) -> bool {
        self.z.reset();
        let start = out.len();
        let mut input = msg;
        loop {
            out.reserve(input.len() / 2 + 64);
            let before = self.z.total_in();
            if self
                .z
                .compress_vec(input, out, FlushCompress::Sync)
                .is_err()
            {
                out.truncate(start);
                return false;
            }
            let used = (self.z.total_in() - before) as usize;
            input = input.get(used..).unwrap_or_default();
            // With room left after a sync flush, zlib has written everything (zlib.h).
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out.len() >= start + TAIL.len() && out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        true
    }
}

#[cfg(test)]
#[path = "deflate_tests.rs"]
mod tests;
