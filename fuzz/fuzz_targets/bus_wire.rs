//! Fuzz the inter-worker bus codec: decode frames from the front of arbitrary bytes as a bus
//! link reader does (decode, advance, repeat until incomplete or an error); every decoded
//! message must encode back to exactly the bytes it came from (the format has one encoding per
//! message), decode again to an equal message, and not be decodable from any shorter prefix.
#![no_main]

use kefu::gateway::bus::wire::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut pos = 0;
    while let Some(rest) = data.get(pos..) {
        match decode(rest) {
            Ok(Some((msg, n))) => {
                assert!(n > 4 && n <= rest.len(), "frame size {n} of {}", rest.len());
                let frame = &rest[..n];
                let mut out = Vec::new();
                encode(&msg, &mut out);
                assert_eq!(out, frame, "re-encoding {msg:?} changed its bytes");
                match decode(&out) {
                    Ok(Some((again, m))) => {
                        assert_eq!(m, n);
                        assert_eq!(again, msg);
                    }
                    other => panic!("re-encoded {msg:?} does not decode: {other:?}"),
                }
                // A frame is only taken once all of it is there.
                assert_eq!(decode(&frame[..n - 1]), Ok(None));
                // Appending to the same buffer keeps earlier frames intact.
                let mut two = vec![0xaa];
                encode(&msg, &mut two);
                assert_eq!(&two[1..], frame);
                pos += n;
            }
            Ok(None) => break,
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
    }
});
