//! Fuzz the permessage-deflate inflater: the first two bytes are the size limit, the rest a
//! compressed message. The output never passes the limit; what inflates must deflate and
//! inflate back to itself with every window our compressor uses.
#![no_main]

use kefu::protocol::websocket::deflate::{Deflater, InflateError, Inflater};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes([*a, *b]));
    let mut inf = Inflater::new();
    let out = match inf.inflate(rest, limit) {
        Ok(out) => out.to_vec(),
        Err(InflateError::TooBig | InflateError::Corrupt) => return,
    };
    assert!(out.len() <= limit);
    let bits = 9 + (a % 7);
    let mut z = Vec::new();
    assert!(Deflater::new(u32::from(b % 9) + 1, bits).deflate(&out, &mut z));
    assert_eq!(inf.inflate(&z, limit).expect("round trip"), &out[..]);
});
