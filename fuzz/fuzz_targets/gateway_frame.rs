//! Fuzz GatewayWorker's inner frame codec the way an inner-port reader uses it: decode frames
//! from the front of arbitrary bytes until one is incomplete or refused. A decoded frame must
//! encode back to exactly its bytes, never exceed the size limit, and not decode from any
//! shorter prefix; an over-limit length must be refused from its first 4 bytes.
#![no_main]

use kefu::protocol::gateway::frame::{decode, encode, FrameError};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut pos = 0;
    while let Some(rest) = data.get(pos..) {
        match decode(rest, MAX) {
            Ok(Some((f, n))) => {
                assert!((28..=MAX).contains(&n) && n <= rest.len());
                let mut out = Vec::new();
                assert!(encode(&mut out, &f.head, f.ext, f.body));
                assert_eq!(out, &rest[..n]);
                assert_eq!(decode(&rest[..n - 1], MAX), Ok(None));
                pos += n;
            }
            Ok(None) => break,
            Err(FrameError::TooLarge { .. }) => {
                assert!(decode(&rest[..4], MAX).is_err());
                break;
            }
            Err(_) => break,
        }
    }
});
