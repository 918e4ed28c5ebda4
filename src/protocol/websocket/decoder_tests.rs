//! Unit and property tests for the WebSocket decoder (kept apart to keep `decoder.rs` short).

use super::*;
use crate::protocol::websocket::frame::encode_client;
use proptest::prelude::*;

const M: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Owned copy of a [`Message`], so results can outlive the decoder borrow.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    Deflated(bool, Vec<u8>),
}

fn own(m: Message<'_>) -> Owned {
    match m {
        Message::Text(s) => Owned::Text(s.to_string()),
        Message::Binary(b) => Owned::Binary(b.to_vec()),
        Message::Ping(b) => Owned::Ping(b.to_vec()),
        Message::Pong(b) => Owned::Pong(b.to_vec()),
        Message::Close(c, r) => Owned::Close(c, r.to_string()),
        Message::Deflated { text, payload } => Owned::Deflated(text, payload.to_vec()),
    }
}

/// Simulates the worker: append each chunk, decode until Partial, drain what was consumed.
/// Returns the messages, the error (if any), and how many stream bytes had arrived at the error.
fn feed(dec: &mut Decoder, chunks: &[&[u8]]) -> (Vec<Owned>, Option<(ProtocolError, usize)>) {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut arrived = 0;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        arrived += chunk.len();
        let mut pos = 0;
        loop {
            match dec.decode(&mut buf[pos..]) {
                Ok(Decoded::Partial) => break,
                Ok(Decoded::Consumed(n)) => pos += n,
                Ok(Decoded::Message(m, n)) => {
                    out.push(own(m));
                    pos += n;
                }
                Err(e) => return (out, Some((e, arrived))),
            }
        }
        buf.drain(..pos);
    }
    (out, None)
}

fn feed_all(max: usize, stream: &[u8]) -> (Vec<Owned>, Option<ProtocolError>) {
    let (m, e) = feed(&mut Decoder::new(max), &[stream]);
    (m, e.map(|x| x.0))
}

fn feed_bytewise(max: usize, stream: &[u8]) -> (Vec<Owned>, Option<(ProtocolError, usize)>) {
    let chunks: Vec<&[u8]> = stream.chunks(1).collect();
    feed(&mut Decoder::new(max), &chunks)
}

fn client(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_client(&mut v, fin, op, payload, M);
    v
}

#[test]
fn rfc_single_frame_masked_hello() {
    let mut buf = vec![
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let range = buf.as_ptr_range();
    let mut dec = Decoder::new(1024);
    match dec.decode(&mut buf) {
        Ok(Decoded::Message(Message::Text(s), 11)) => {
            assert_eq!(s, "Hello");
            // Zero-copy: the text points into the caller's buffer.
            assert!(range.contains(&s.as_ptr()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rfc_fragmented_hello() {
    let mut buf = client(false, OpCode::Text, b"Hel");
    buf.extend(client(true, OpCode::Continue, b"lo"));
    let mut dec = Decoder::new(1024);
    assert_eq!(dec.decode(&mut buf), Ok(Decoded::Consumed(9)));
    assert!(dec.in_fragmented_message());
    assert_eq!(
        dec.decode(&mut buf[9..]),
        Ok(Decoded::Message(Message::Text("Hello"), 8))
    );
    assert!(!dec.in_fragmented_message());
}

#[test]
fn rfc_ping_pong() {
    let mut buf = client(true, OpCode::Ping, b"Hello");
    assert_eq!(
        Decoder::new(0).decode(&mut buf),
        Ok(Decoded::Message(Message::Ping(b"Hello"), 11))
    );
    let mut buf = client(true, OpCode::Pong, b"");
    assert_eq!(
        Decoder::new(0).decode(&mut buf),
        Ok(Decoded::Message(Message::Pong(b""), 6))
    );
}

#[test]
fn length_boundaries_decode() {
    for len in [0usize, 1, 125, 126, 256, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let stream = client(true, OpCode::Binary, &payload);
        let ext = match len {
            0..=125 => 0,
            126..=65535 => 2,
            _ => 8,
        };
        assert_eq!(stream.len(), 2 + ext + 4 + len);
        let (msgs, err) = feed_all(len, &stream);
        assert_eq!(err, None, "len {len}");
        assert_eq!(msgs, vec![Owned::Binary(payload)]);
        // One byte over the limit is refused.
        if len > 0 {
            assert_eq!(
                feed_all(len - 1, &stream).1,
                Some(ProtocolError::MessageTooBig)
            );
        }
    }
}

#[test]
fn header_rule_violations() {
    let cases: &[(&[u8], ProtocolError)] = &[
        (&[0x81, 0x05], ProtocolError::Unmasked),
        (&[0xC1], ProtocolError::ReservedBits),
        (&[0xA1], ProtocolError::ReservedBits),
        (&[0x91], ProtocolError::ReservedBits),
        (&[0x83], ProtocolError::ReservedOpcode),
        (&[0x87], ProtocolError::ReservedOpcode),
        (&[0x8B], ProtocolError::ReservedOpcode),
        (&[0x8F], ProtocolError::ReservedOpcode),
        (&[0x09], ProtocolError::FragmentedControl),
        (&[0x08], ProtocolError::FragmentedControl),
        (&[0x89, 0xFE], ProtocolError::ControlTooLong),
        (&[0x88, 0xFF], ProtocolError::ControlTooLong),
        (&[0x80], ProtocolError::UnexpectedContinuation),
        (&[0x00], ProtocolError::UnexpectedContinuation),
        (&[0x82, 0xFF, 0x80], ProtocolError::LengthHighBit),
        (&[0x82, 0xFE, 0x00, 0x7D], ProtocolError::NonMinimalLength),
        (
            &[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
            ProtocolError::NonMinimalLength,
        ),
        // Declared 1 MiB > limit: refused from the header alone, before the mask key.
        (
            &[0x82, 0xFF, 0, 0, 0, 0, 0, 0x10, 0, 0],
            ProtocolError::MessageTooBig,
        ),
        (&[0x82, 0xFE, 0x10, 0x00], ProtocolError::MessageTooBig),
    ];
    for (bytes, want) in cases {
        let mut b = bytes.to_vec();
        assert_eq!(Decoder::new(1000).decode(&mut b), Err(*want), "{bytes:x?}");
        // Fail fast: a header-only prefix already carries the error.
        let (_, err) = feed_bytewise(1000, bytes);
        assert_eq!(err, Some((*want, bytes.len())), "{bytes:x?}");
    }
}

#[test]
fn error_close_codes() {
    assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
    assert_eq!(ProtocolError::MessageTooBig.close_code(), 1009);
    for e in [
        ProtocolError::Unmasked,
        ProtocolError::ReservedBits,
        ProtocolError::ReservedOpcode,
        ProtocolError::FragmentedControl,
        ProtocolError::ControlTooLong,
        ProtocolError::UnexpectedContinuation,
        ProtocolError::ExpectedContinuation,
        ProtocolError::NonMinimalLength,
        ProtocolError::LengthHighBit,
        ProtocolError::BadClosePayload,
        ProtocolError::BadCloseCode,
    ] {
        assert_eq!(e.close_code(), 1002, "{e}");
    }
}

#[test]
fn fragmentation_rules() {
    // New text frame while a message is open.
    let mut s = client(false, OpCode::Text, b"a");
    s.extend(client(true, OpCode::Binary, b"b"));
    assert_eq!(
        feed_all(100, &s).1,
        Some(ProtocolError::ExpectedContinuation)
    );
    // Continuation after the message was finished.
    let mut s = client(true, OpCode::Text, b"a");
    s.extend(client(true, OpCode::Continue, b"b"));
    assert_eq!(
        feed_all(100, &s),
        (
            vec![Owned::Text("a".into())],
            Some(ProtocolError::UnexpectedContinuation)
        )
    );
    // Control frames interleaved between fragments, including a close.
    let mut s = client(false, OpCode::Binary, b"ab");
    s.extend(client(true, OpCode::Ping, b"p"));
    s.extend(client(false, OpCode::Continue, b""));
    s.extend(client(true, OpCode::Pong, b"q"));
    s.extend(client(true, OpCode::Continue, b"cd"));
    s.extend(client(true, OpCode::Text, b"next"));
    let want = vec![
        Owned::Ping(b"p".to_vec()),
        Owned::Pong(b"q".to_vec()),
        Owned::Binary(b"abcd".to_vec()),
        Owned::Text("next".into()),
    ];
    assert_eq!(feed_all(100, &s), (want.clone(), None));
    assert_eq!(feed_bytewise(100, &s).0, want);
}

#[test]
fn cumulative_size_limit_checked_on_header() {
    let mut s = client(false, OpCode::Binary, &[1; 600]);
    let second = client(true, OpCode::Continue, &[2; 401]);
    // 8-byte first header + 600 payload, then the 4 header bytes declaring the length.
    let second_header_len = 4;
    s.extend(&second);
    let (_, err) = feed_bytewise(1000, &s);
    assert_eq!(
        err,
        Some((ProtocolError::MessageTooBig, 608 + second_header_len))
    );
    // Exactly at the limit is fine.
    let mut s = client(false, OpCode::Binary, &[1; 600]);
    s.extend(client(true, OpCode::Continue, &[2; 400]));
    assert_eq!(feed_all(1000, &s).1, None);
}

#[test]
fn close_payloads() {
    let with_code = |code: u16, reason: &[u8]| {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason);
        feed_all(0, &client(true, OpCode::Close, &p))
    };
    assert_eq!(
        with_code(1000, b"bye"),
        (vec![Owned::Close(Some(1000), "bye".into())], None)
    );
    assert_eq!(
        with_code(4999, "再见".as_bytes()).0,
        vec![Owned::Close(Some(4999), "再见".into())]
    );
    for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        assert_eq!(
            with_code(bad, b"").1,
            Some(ProtocolError::BadCloseCode),
            "{bad}"
        );
    }
    assert_eq!(
        with_code(1000, &[0xce, 0xba, 0xe1]).1,
        Some(ProtocolError::InvalidUtf8)
    );
    assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
    assert_eq!(
        feed_all(0, &client(true, OpCode::Close, b"")).0,
        vec![Owned::Close(None, String::new())]
    );
    assert_eq!(
        feed_all(0, &client(true, OpCode::Close, b"\x03")).1,
        Some(ProtocolError::BadClosePayload)
    );
}

#[test]
fn partial_frames_are_not_unmasked_twice() {
    let payload = vec![b'z'; 300];
    for op in [OpCode::Text, OpCode::Binary] {
        let stream = client(true, op, &payload);
        let mut dec = Decoder::new(1000);
        let mut buf = Vec::new();
        for (i, b) in stream.iter().enumerate() {
            buf.push(*b);
            let r = dec.decode(&mut buf).map(|d| match d {
                Decoded::Message(m, n) => Some((own(m), n)),
                _ => None,
            });
            if i + 1 < stream.len() {
                assert_eq!(r, Ok(None));
            } else {
                let want = match op {
                    OpCode::Text => Owned::Text("z".repeat(300)),
                    _ => Owned::Binary(payload.clone()),
                };
                assert_eq!(r, Ok(Some((want, stream.len()))));
            }
        }
    }
}

#[test]
fn assembled_buffer_is_reused_and_released() {
    let mut s = client(false, OpCode::Text, "día".as_bytes());
    s.extend(client(true, OpCode::Continue, b"!"));
    s.extend(client(false, OpCode::Binary, b"x"));
    s.extend(client(true, OpCode::Continue, b"y"));
    assert_eq!(
        feed_all(100, &s).0,
        vec![Owned::Text("día!".into()), Owned::Binary(b"xy".to_vec())]
    );
}

/// Builds `frags` fragments of `text` with one bad byte at `bad_at`, returning the stream and
/// the stream offset of the bad byte.
fn text_with_bad_byte(text: &[u8], bad_at: usize, bad: u8, cut: Option<usize>) -> (Vec<u8>, usize) {
    let mut payload = text.to_vec();
    payload[bad_at] = bad;
    let mut stream = Vec::new();
    let offset;
    match cut {
        None => {
            stream = client(true, OpCode::Text, &payload);
            offset = stream.len() - payload.len() + bad_at;
        }
        Some(c) => {
            let first = client(false, OpCode::Text, &payload[..c]);
            let second = client(true, OpCode::Continue, &payload[c..]);
            offset = if bad_at < c {
                first.len() - c + bad_at
            } else {
                first.len() + (second.len() - (payload.len() - c)) + (bad_at - c)
            };
            stream.extend(first);
            stream.extend(second);
        }
    }
    (stream, offset)
}

#[test]
fn invalid_utf8_fails_fast_at_every_position() {
    let text = "héllo wörld €uro 😀 end".as_bytes();
    for bad in [0xFFu8, 0x80, 0xC0] {
        for bad_at in 0..text.len() {
            for cut in std::iter::once(None).chain((0..=text.len()).map(Some)) {
                let (stream, offset) = text_with_bad_byte(text, bad_at, bad, cut);
                let mut payload = text.to_vec();
                payload[bad_at] = bad;
                if std::str::from_utf8(&payload).is_ok() {
                    continue; // e.g. 0x80 replacing a continuation byte is still valid
                }
                let (msgs, err) = feed_bytewise(1000, &stream);
                let (err, arrived) = err.expect("error expected");
                assert!(msgs.is_empty());
                assert_eq!(err, ProtocolError::InvalidUtf8);
                // Reported no later than the frame byte that made the prefix invalid: a lone
                // continuation byte is caught at once, a broken sequence at most 3 bytes later.
                assert!(
                    arrived <= offset + 4,
                    "bad {bad:x} at {bad_at} cut {cut:?}: {arrived} vs {offset}"
                );
                assert_eq!(feed_all(1000, &stream).1, Some(ProtocolError::InvalidUtf8));
            }
        }
    }
}

#[test]
fn invalid_utf8_known_prefix_fails_on_second_byte() {
    // Autobahn 6.4.x style: the prefix is already impossible, rest of the frame never arrives.
    for bad in [
        &[0xF4u8, 0x90][..],
        &[0xE0, 0x80],
        &[0xED, 0xA0],
        &[
            0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xF4, 0x90,
        ],
    ] {
        let mut payload = bad.to_vec();
        payload.extend_from_slice(b"0123456789");
        let stream = client(true, OpCode::Text, &payload);
        let (_, err) = feed_bytewise(1000, &stream);
        assert_eq!(
            err,
            Some((ProtocolError::InvalidUtf8, 6 + bad.len())),
            "{bad:x?}"
        );
    }
}

#[test]
fn truncated_char_at_message_end_is_invalid() {
    let mut s = client(false, OpCode::Text, b"ok\xE2\x82");
    s.extend(client(true, OpCode::Continue, b""));
    assert_eq!(feed_all(100, &s).1, Some(ProtocolError::InvalidUtf8));
    let s = client(true, OpCode::Text, b"ok\xE2\x82");
    assert_eq!(feed_all(100, &s).1, Some(ProtocolError::InvalidUtf8));
    assert_eq!(feed_bytewise(100, &s).0, vec![]);
    assert_eq!(
        feed_bytewise(100, &s).1.map(|e| e.0),
        Some(ProtocolError::InvalidUtf8)
    );
    // A character split across fragments is fine.
    let mut s = client(false, OpCode::Text, b"\xE2");
    s.extend(client(false, OpCode::Continue, b"\x82"));
    s.extend(client(true, OpCode::Continue, b"\xAC"));
    assert_eq!(feed_all(100, &s).0, vec![Owned::Text("€".into())]);
}

/// One message of a generated conversation.
#[derive(Debug, Clone)]
enum Gen {
    Text(String, Vec<prop::sample::Index>),
    Binary(Vec<u8>, Vec<prop::sample::Index>),
    Ping(Vec<u8>),
}

fn gen_msg() -> impl Strategy<Value = Gen> {
    let cuts = || proptest::collection::vec(any::<prop::sample::Index>(), 0..4);
    prop_oneof![
        (".{0,40}", cuts()).prop_map(|(s, c)| Gen::Text(s, c)),
        (proptest::collection::vec(any::<u8>(), 0..300), cuts())
            .prop_map(|(b, c)| Gen::Binary(b, c)),
        proptest::collection::vec(any::<u8>(), 0..126).prop_map(Gen::Ping),
    ]
}

/// Encode the conversation as masked client frames, with a ping between fragments.
fn encode_conversation(msgs: &[Gen], mask: [u8; 4]) -> (Vec<u8>, Vec<Owned>) {
    let mut stream = Vec::new();
    let mut want = Vec::new();
    for m in msgs {
        let (op, data, cuts) = match m {
            Gen::Ping(p) => {
                encode_client(&mut stream, true, OpCode::Ping, p, mask);
                want.push(Owned::Ping(p.clone()));
                continue;
            }
            Gen::Text(s, c) => (OpCode::Text, s.as_bytes(), c),
            Gen::Binary(b, c) => (OpCode::Binary, b.as_slice(), c),
        };
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        points.retain(|&p| p != data.len());
        let mut prev = 0;
        for (n, &p) in points.iter().enumerate() {
            let o = if n == 0 { op } else { OpCode::Continue };
            encode_client(&mut stream, false, o, &data[prev..p], mask);
            encode_client(&mut stream, true, OpCode::Pong, b"between", mask);
            want.push(Owned::Pong(b"between".to_vec()));
            prev = p;
        }
        let o = if points.is_empty() {
            op
        } else {
            OpCode::Continue
        };
        encode_client(&mut stream, true, o, &data[prev..], mask);
        want.push(match m {
            Gen::Text(s, _) => Owned::Text(s.clone()),
            _ => Owned::Binary(data.to_vec()),
        });
    }
    (stream, want)
}

proptest! {
    #[test]
    fn split_points_do_not_change_messages(
        msgs in proptest::collection::vec(gen_msg(), 0..8),
        mask in any::<[u8; 4]>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let (stream, want) = encode_conversation(&msgs, mask);
        let whole = feed_all(4096, &stream);
        prop_assert_eq!(&whole, &(want, None));
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.extend([0, stream.len()]);
        points.sort_unstable();
        let chunks: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
        let (m, e) = feed(&mut Decoder::new(4096), &chunks);
        prop_assert_eq!(&whole, &(m, e.map(|x| x.0)));
        let (m, e) = feed_bytewise(4096, &stream);
        prop_assert_eq!(&whole, &(m, e.map(|x| x.0)));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_invariant(
        data in proptest::collection::vec(any::<u8>(), 0..200),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let whole = feed_all(128, &data);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        points.extend([0, data.len()]);
        points.sort_unstable();
        let chunks: Vec<&[u8]> = points.windows(2).map(|w| &data[w[0]..w[1]]).collect();
        let (m, e) = feed(&mut Decoder::new(128), &chunks);
        // Fail-fast may report an error earlier when split, but never a different prefix.
        match (&whole.1, e.map(|x| x.0)) {
            (None, None) => prop_assert_eq!(&whole.0, &m),
            (Some(a), Some(b)) => { prop_assert_eq!(*a, b); prop_assert_eq!(&whole.0, &m); }
            (None, Some(b)) => prop_assert!(false, "split-only error {:?}", b),
            (Some(_), None) => prop_assert!(false, "whole-only error"),
        }
    }
}

#[test]
fn memory_grows_only_with_received_bytes() {
    // A fragment declaring 100 000 bytes, of which only 10 arrived: nothing is reserved.
    let stream = client(false, OpCode::Binary, &vec![9u8; 100_000]);
    let mut dec = Decoder::new(1 << 20);
    let mut part = stream[..24].to_vec();
    assert_eq!(dec.decode(&mut part), Ok(Decoded::Partial));
    assert_eq!(dec.assembled.capacity(), 0);
    // Once the whole fragment is in, it is copied; a big reassembly buffer is freed after use.
    let mut whole = stream.clone();
    whole.extend(client(true, OpCode::Continue, b"!"));
    let mut dec = Decoder::new(1 << 20);
    let (msgs, err) = feed(&mut dec, &[&whole]);
    assert_eq!((msgs.len(), err), (1, None));
    let mut ping = client(true, OpCode::Ping, b"");
    assert!(dec.decode(&mut ping).is_ok());
    assert_eq!(dec.assembled.capacity(), 0);
}

#[test]
fn partial_text_frame_is_validated_before_it_completes() {
    // 300-byte text frame whose byte 200 is invalid; only 210 payload bytes ever arrive.
    let mut payload = vec![b'a'; 300];
    payload[200] = 0xFF;
    let stream = client(true, OpCode::Text, &payload);
    let header = stream.len() - 300;
    let mut dec = Decoder::new(1000);
    let mut buf = stream[..header + 100].to_vec();
    assert_eq!(dec.decode(&mut buf), Ok(Decoded::Partial));
    // Same bytes again plus more (already-unmasked bytes are not unmasked twice).
    buf.extend_from_slice(&stream[header + 100..header + 210]);
    assert_eq!(dec.decode(&mut buf), Err(ProtocolError::InvalidUtf8));
}

/// Decode `stream` cut at `at`, moving the decoder to a new one through its serialized state
/// (and the unread bytes, unmasked as far as it got) at the cut: what a reload's hand-over does.
fn feed_moved(max: usize, stream: &[u8], at: usize) -> (Vec<Owned>, Option<ProtocolError>) {
    let mut dec = Decoder::new(max);
    let mut buf = stream[..at].to_vec();
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        match dec.decode(&mut buf[pos..]) {
            Ok(Decoded::Partial) => break,
            Ok(Decoded::Consumed(n)) => pos += n,
            Ok(Decoded::Message(m, n)) => {
                out.push(own(m));
                pos += n;
            }
            Err(e) => return (out, Some(e)),
        }
    }
    buf.drain(..pos);
    let json = serde_json::to_string(&dec.state()).unwrap();
    let st: DecoderState = serde_json::from_str(&json).unwrap();
    let mut moved = Decoder::resume(max, st, buf.len()).unwrap();
    let (rest, e) = feed(&mut moved, &[&buf, &stream[at..]]);
    out.extend(rest);
    (out, e.map(|x| x.0))
}

proptest! {
    #[test]
    fn a_decoder_moved_at_any_point_decodes_the_same(
        msgs in proptest::collection::vec(gen_msg(), 0..6),
        mask in any::<[u8; 4]>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let (stream, want) = encode_conversation(&msgs, mask);
        let at = cut.index(stream.len() + 1);
        prop_assert_eq!(feed_moved(4096, &stream, at), (want, None));
    }
}

#[path = "decoder_deflate_tests.rs"]
mod deflate;
