//! Fuzz the WebSocket decoder: input split into chunks of a size chosen by the first byte, fed
//! like the worker does (append, decode until Partial, drain). Also checks that splitting does not
//! change the result compared with feeding everything at once. Bit 7 of the first byte turns
//! permessage-deflate on: compressed messages are then inflated (4096-byte limit) like the
//! worker does.
#![no_main]

use kefu::protocol::websocket::decoder::{inflate_message, Decoded, Decoder, Message};
use kefu::protocol::websocket::deflate::Inflater;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Owned {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    /// A compressed message and what it inflated to (or the close code it failed with).
    Deflated(bool, Vec<u8>, Result<Vec<u8>, u16>),
}

fn run(data: &[u8], chunk: usize, deflate: bool) -> (Vec<Owned>, bool) {
    let mut dec = Decoder::new(4096);
    if deflate {
        dec.enable_deflate();
    }
    let mut inf = Inflater::new();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        let mut pos = 0;
        loop {
            match dec.decode(&mut buf[pos..]) {
                Ok(Decoded::Partial) => break,
                Ok(Decoded::Consumed(n)) => {
                    assert!(n > 0);
                    pos += n;
                }
                Ok(Decoded::Message(m, n)) => {
                    out.push(match m {
                        Message::Text(s) => Owned::Text(s.to_string()),
                        Message::Binary(b) => Owned::Binary(b.to_vec()),
                        Message::Ping(b) => Owned::Ping(b.to_vec()),
                        Message::Pong(b) => Owned::Pong(b.to_vec()),
                        Message::Close(c, r) => Owned::Close(c, r.to_string()),
                        Message::Deflated { text, payload } => {
                            let r = match inflate_message(&mut inf, text, payload, 4096) {
                                Ok(Message::Text(s)) => Ok(s.as_bytes().to_vec()),
                                Ok(Message::Binary(b)) => {
                                    assert!(b.len() <= 4096);
                                    Ok(b.to_vec())
                                }
                                Ok(other) => panic!("inflated to {other:?}"),
                                Err(e) => Err(e.close_code()),
                            };
                            Owned::Deflated(text, payload.to_vec(), r)
                        }
                    });
                    pos += n;
                }
                Err(e) => {
                    let _ = e.close_code();
                    return (out, true);
                }
            }
        }
        buf.drain(..pos);
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let deflate = first & 0x80 != 0;
    let split = run(rest, usize::from(first % 64) + 1, deflate);
    let whole = run(rest, rest.len(), deflate);
    // Fail-fast may stop earlier on a split stream, never with different messages.
    assert_eq!(split, whole);
});
