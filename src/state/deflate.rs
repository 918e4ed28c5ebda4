//! The worker's permessage-deflate codecs, shared by all its connections: one inflater and one
//! compressor per window size, each created on first use and reset for every message. Nothing
//! is kept per connection, so 100 000 idle clients with compression agreed cost no more than
//! without it.

use crate::config::WebSocketConfig;
use crate::protocol::websocket::deflate::{Deflater, Inflater};
use crate::protocol::websocket::extensions::MAX_WINDOW_BITS;

/// Smallest window our compressor produces (zlib's raw deflate has no 8-bit window).
const MIN_DEFLATE_BITS: u8 = 9;

/// Compressed messages larger than this leave the scratch buffer to be freed after use.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Compression settings and the shared codecs of one worker.
#[derive(Debug)]
pub(crate) struct Codecs {
    /// Messages shorter than this go uncompressed.
    threshold: usize,
    level: u32,
    /// Indexed by window bits - 9.
    deflaters: [Option<Box<Deflater>>; (MAX_WINDOW_BITS - MIN_DEFLATE_BITS + 1) as usize],
    inflater: Option<Box<Inflater>>,
    /// Compressed bytes of the message being queued.
    scratch: Vec<u8>,
    /// Messages compressed (once each, however many receivers).
    pub deflated: u64,
    /// Their bytes before and after compression.
    pub bytes_in: u64,
    /// See `bytes_in`.
    pub bytes_out: u64,
}

impl Codecs {
    /// Codecs with the config's threshold and level; nothing is allocated until used.
    pub(crate) fn new(ws: &WebSocketConfig) -> Codecs {
        Codecs {
            threshold: ws.compression_threshold,
            level: ws.compression_level,
            deflaters: Default::default(),
            inflater: None,
            scratch: Vec::new(),
            deflated: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Whether a message of `len` bytes to a receiver that agreed on `window_bits` is worth
    /// compressing (an 8-bit window cannot be produced: such receivers get plain messages).
    pub(crate) fn wants(&self, len: usize, window_bits: u8) -> bool {
        len >= self.threshold && window_bits >= MIN_DEFLATE_BITS
    }

    /// Compress `msg` for receivers with `window_bits`; `None` if it would not get smaller
    /// (unless the threshold is 0: then always).
    /// The result is valid until the next call.
    pub(crate) fn compress(&mut self, msg: &[u8], window_bits: u8) -> Option<&[u8]> {
        let bits = window_bits.clamp(MIN_DEFLATE_BITS, MAX_WINDOW_BITS);
        let level = self.level;
        let d = self
            .deflaters
            .get_mut(usize::from(bits - MIN_DEFLATE_BITS))?
            .get_or_insert_with(|| Box::new(Deflater::new(level, bits)));
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::new();
        }
        self.scratch.clear();
        // With no threshold every message is compressed, even one deflate makes larger (the
        // Autobahn runner, for one, expects every echo of a compressed message compressed).
        if !d.deflate(msg, &mut self.scratch)
            || (self.threshold > 0 && self.scratch.len() >= msg.len())
        {
            return None;
        }
        self.deflated += 1;
        self.bytes_in += msg.len() as u64;
        self.bytes_out += self.scratch.len() as u64;
        Some(&self.scratch)
    }

    /// Lend the inflater (created on first use); give it back with [`Codecs::put_inflater`].
    pub(crate) fn take_inflater(&mut self) -> Box<Inflater> {
        self.inflater.take().unwrap_or_default()
    }

    /// Return the inflater lent by [`Codecs::take_inflater`].
    pub(crate) fn put_inflater(&mut self, inf: Box<Inflater>) {
        self.inflater = Some(inf);
    }
}
