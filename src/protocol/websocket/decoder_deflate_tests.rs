//! The decoder with permessage-deflate negotiated (RFC 7692): RSV1 rules, fragmented compressed messages, inflate limits.

use super::*;

/// A client frame with RSV1 set (byte 0 of a frame `encode_client` made).
fn rsv1(mut frame: Vec<u8>) -> Vec<u8> {
    frame[0] |= 0x40;
    frame
}

fn compress(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(crate::protocol::websocket::deflate::Deflater::new(6, 15).deflate(msg, &mut out));
    out
}

fn deflate_decoder(max: usize) -> Decoder {
    let mut d = Decoder::new(max);
    d.enable_deflate();
    d
}

#[test]
fn rsv1_refused_unless_negotiated() {
    let mut f = Vec::new();
    encode_client(&mut f, true, OpCode::Text, &compress(b"hi"), M);
    let f = rsv1(f);
    assert_eq!(feed_all(1000, &f).1, Some(ProtocolError::ReservedBits));
    assert_eq!(ProtocolError::ReservedBits.close_code(), 1002);
    let (m, e) = feed(&mut deflate_decoder(1000), &[&f]);
    assert_eq!(e, None);
    assert_eq!(m, vec![Owned::Deflated(true, compress(b"hi"))]);
}

#[test]
fn rsv1_refused_on_control_and_continuation_frames() {
    for op in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
        let mut f = Vec::new();
        encode_client(&mut f, true, op, b"", M);
        let (_, e) = feed(&mut deflate_decoder(1000), &[&rsv1(f)]);
        assert_eq!(e.map(|x| x.0), Some(ProtocolError::ReservedBits), "{op:?}");
    }
    let mut s = Vec::new();
    encode_client(&mut s, false, OpCode::Text, b"a", M);
    let mut c = Vec::new();
    encode_client(&mut c, true, OpCode::Continue, b"b", M);
    s.extend_from_slice(&rsv1(c));
    let (_, e) = feed(&mut deflate_decoder(1000), &[&s]);
    assert_eq!(e.map(|x| x.0), Some(ProtocolError::ReservedBits));
    // RSV2 and RSV3 stay refused with deflate on.
    for bit in [0x20, 0x10] {
        let mut f = Vec::new();
        encode_client(&mut f, true, OpCode::Text, b"a", M);
        f[0] |= bit;
        let (_, e) = feed(&mut deflate_decoder(1000), &[&f]);
        assert_eq!(e.map(|x| x.0), Some(ProtocolError::ReservedBits));
    }
}

#[test]
fn a_bad_state_is_refused() {
    let ok = DecoderState::default();
    assert!(Decoder::resume(10, ok.clone(), 0).is_ok());
    let bad_op = DecoderState {
        frag_opcode: Some(8),
        ..ok.clone()
    };
    assert_eq!(
        Decoder::resume(10, bad_op, 0).unwrap_err(),
        StateError::BadOpcode
    );
    let big = DecoderState {
        frag_opcode: Some(2),
        assembled: vec![0; 11],
        ..ok.clone()
    };
    assert_eq!(Decoder::resume(10, big, 0).unwrap_err(), StateError::TooBig);
    let utf8 = DecoderState {
        utf8_pending: vec![0x80],
        ..ok.clone()
    };
    assert_eq!(
        Decoder::resume(10, utf8, 0).unwrap_err(),
        StateError::BadUtf8
    );
    let progress = DecoderState {
        frame_progress: 5,
        ..ok
    };
    assert_eq!(
        Decoder::resume(10, progress, 4).unwrap_err(),
        StateError::BadProgress
    );
}

#[test]
fn fragmented_compressed_message_with_interleaved_ping() {
    let msg = "你好, 客服! ".repeat(50);
    let z = compress(msg.as_bytes());
    let (a, b) = z.split_at(z.len() / 2);
    let mut s = Vec::new();
    let mut f = Vec::new();
    encode_client(&mut f, false, OpCode::Text, a, M);
    s.extend_from_slice(&rsv1(f));
    encode_client(&mut s, true, OpCode::Ping, b"p", M);
    encode_client(&mut s, true, OpCode::Continue, b, M);
    // Then a plain message on the same connection.
    encode_client(&mut s, true, OpCode::Text, b"plain", M);
    for chunks in [vec![&s[..]], s.chunks(1).collect::<Vec<_>>()] {
        let (m, e) = feed(&mut deflate_decoder(10_000), &chunks);
        assert_eq!(e, None);
        assert_eq!(
            m,
            vec![
                Owned::Ping(b"p".to_vec()),
                Owned::Deflated(true, z.clone()),
                Owned::Text("plain".into())
            ]
        );
    }
    let mut inf = crate::protocol::websocket::deflate::Inflater::new();
    assert_eq!(
        inflate_message(&mut inf, true, &z, 10_000),
        Ok(Message::Text(&msg))
    );
}

#[test]
fn inflated_message_checks() {
    let mut inf = crate::protocol::websocket::deflate::Inflater::new();
    let bad = compress(&[b'a', 0xff, b'b']);
    assert_eq!(
        inflate_message(&mut inf, true, &bad, 100),
        Err(ProtocolError::InvalidUtf8)
    );
    assert_eq!(
        inflate_message(&mut inf, false, &bad, 100),
        Ok(Message::Binary(&[b'a', 0xff, b'b']))
    );
    let big = compress(&[b'x'; 5000]);
    let e = inflate_message(&mut inf, false, &big, 4999).unwrap_err();
    assert_eq!((e, e.close_code()), (ProtocolError::MessageTooBig, 1009));
    let e = inflate_message(&mut inf, false, &[0xff, 0xff], 4999).unwrap_err();
    assert_eq!((e, e.close_code()), (ProtocolError::BadDeflate, 1007));
    // Invalid UTF-8 on the wire of a compressed text frame is not checked: only what it inflates to.
    let mut f = Vec::new();
    encode_client(&mut f, true, OpCode::Text, &[0xff, 0xfe], M);
    let (m, e) = feed(&mut deflate_decoder(100), &[&rsv1(f)]);
    assert_eq!(
        (m, e),
        (vec![Owned::Deflated(true, vec![0xff, 0xfe])], None)
    );
}
