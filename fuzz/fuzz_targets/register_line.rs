//! Fuzz the Register's JSON-line protocol: split arbitrary bytes into lines as the Register
//! does and decode each; anything accepted must encode to a line that decodes to the same
//! message.
#![no_main]

use kefu::protocol::gateway::register::{decode, encode};
use kefu::protocol::text::LineCodec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut codec = LineCodec::new(1024);
    let mut pos = 0;
    while let Ok(Some((line, n))) = codec.decode(&data[pos..]) {
        if let Ok(msg) = decode(line) {
            let mut out = Vec::new();
            encode(&mut out, &msg);
            assert_eq!(out.last(), Some(&b'\n'));
            assert_eq!(decode(&out[..out.len() - 1]), Ok(msg));
        }
        pos += n;
    }
});
