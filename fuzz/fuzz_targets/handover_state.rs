//! Fuzz what a reload's successor reads about a connection: a WebSocket decoder's state
//! (`DecoderState`, JSON) resumed with `Decoder::resume` against the unread bytes that came
//! with it, then fed further like the worker does; and the same JSON read as a whole
//! `ConnRecord`. Input: 2 bytes (little-endian) giving the JSON's length, the JSON, then the
//! stream. A state that is refused must be refused with a typed error, never a panic; a default
//! state must decode exactly as a fresh decoder does.
#![no_main]

use kefu::connection::handover::ConnRecord;
use kefu::protocol::websocket::decoder::{Decoded, Decoder, DecoderState};
use libfuzzer_sys::fuzz_target;

/// Feed `data` in one piece; the decoded message lengths and whether it failed.
fn run(mut dec: Decoder, data: &[u8]) -> (Vec<usize>, bool) {
    let mut buf = data.to_vec();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        match dec.decode(&mut buf[pos..]) {
            Ok(Decoded::Partial) => return (out, false),
            Ok(Decoded::Consumed(n)) => pos += n,
            Ok(Decoded::Message(m, n)) => {
                out.push(format!("{m:?}").len());
                pos += n;
            }
            Err(e) => {
                let _ = e.close_code();
                return (out, true);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let n = usize::from(u16::from_le_bytes(*head)).min(rest.len());
    let (json, stream) = rest.split_at(n);
    let _ = serde_json::from_slice::<ConnRecord>(json);
    let Ok(st) = serde_json::from_slice::<DecoderState>(json) else {
        return;
    };
    let fresh = st == DecoderState::default();
    match Decoder::resume(4096, st, stream.len()) {
        Ok(dec) => {
            let got = run(dec, stream);
            if fresh {
                assert_eq!(got, run(Decoder::new(4096), stream));
            }
        }
        Err(e) => {
            assert!(!fresh, "the default state was refused: {e}");
            let _ = e.to_string();
        }
    }
});
