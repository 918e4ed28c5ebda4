//! Fuzz what a reload's successor reads about a connection: a binary `ConnRecord` body
//! (`protocol::record`, the hand-over's encoding) and, when it holds a WebSocket decoder's
//! state, `Decoder::resume` against the bytes after it, fed further like the worker does. The
//! same body is also read as a bare `DecoderState`. Input: 2 bytes (little-endian) giving the
//! body's length, the body, then the stream. Bytes that are not a record must give a typed
//! error, never a panic; a record that decodes must encode back to a record equal to it; a
//! refused decoder state is a typed error; a default state decodes exactly as a fresh decoder.
#![no_main]

use kefu::connection::handover::{ConnRecord, ProtoRecord};
use kefu::protocol::record;
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

/// The body as a frame of the hand-over's framing.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn resume(st: DecoderState, stream: &[u8]) {
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
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let n = usize::from(u16::from_le_bytes(*head)).min(rest.len());
    let (body, stream) = rest.split_at(n);
    let frame = framed(body);
    if let Ok(Some((rec, used))) = record::decode::<ConnRecord>(&frame, 1 << 20) {
        assert_eq!(used, frame.len());
        let mut again = Vec::new();
        record::encode(&rec, &mut again);
        let (back, _) = record::decode::<ConnRecord>(&again, 1 << 20)
            .expect("a record's own encoding decodes")
            .expect("whole");
        assert_eq!(back, rec);
        if let ProtoRecord::Ws { state } = rec.proto {
            resume(state, stream);
        }
    }
    if let Ok(Some((st, _))) = record::decode::<DecoderState>(&frame, 1 << 20) {
        resume(st, stream);
    }
});
