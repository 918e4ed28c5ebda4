//! `ws_*` and `utf8` seeds: masked, fragmented, control and deflated frames a browser may send.

use crate::{seed, Seeds};
use kefu::protocol::websocket::deflate::Deflater;

/// One client frame; `mask` None means unmasked (a protocol error for a server).
pub(crate) fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        f.push(m | n as u8);
    } else if n < 65536 {
        f.push(m | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(m | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

const M: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

/// `chunk` selects the split size (first byte % 64 + 1), then the frames.
fn stream(chunk: u8, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![chunk];
    for f in frames {
        v.extend_from_slice(f);
    }
    v
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

pub(crate) fn ws_decoder() -> Seeds {
    let hello = frame(true, 1, b"Hello", M);
    vec![
        seed("text_whole", stream(63, std::slice::from_ref(&hello))),
        seed("text_byte_by_byte", stream(0, std::slice::from_ref(&hello))),
        seed(
            "text_utf8",
            stream(2, &[frame(true, 1, "客服 😀".as_bytes(), M)]),
        ),
        seed("text_empty", stream(7, &[frame(true, 1, b"", M)])),
        seed("binary", stream(5, &[frame(true, 2, &[0, 1, 2, 255], M)])),
        seed("binary_len16", stream(31, &[frame(true, 2, &[7; 300], M)])),
        // Over the target's 4096-byte limit: refused on the declared length, so the head
        // and a few payload bytes are enough (seeds stay small; libFuzzer sizes its inputs
        // after the largest seed). A valid 64-bit length needs 64 KiB: see header_only.
        seed(
            "binary_over_max",
            stream(63, &[frame(true, 2, &[1; 5000], M)[..20].to_vec()]),
        ),
        seed(
            "fragmented_text",
            stream(
                3,
                &[
                    frame(false, 1, b"frag", M),
                    frame(false, 0, b"men", M),
                    frame(true, 0, b"ted", M),
                ],
            ),
        ),
        seed(
            "fragmented_utf8_split_char",
            stream(
                1,
                &[
                    frame(false, 1, &"客".as_bytes()[..2], M),
                    frame(true, 0, &"客".as_bytes()[2..], M),
                ],
            ),
        ),
        seed(
            "fragmented_with_ping",
            stream(
                4,
                &[
                    frame(false, 1, b"a", M),
                    frame(true, 9, b"p!", M),
                    frame(true, 0, b"b", M),
                ],
            ),
        ),
        seed("ping", stream(9, &[frame(true, 9, b"ping data", M)])),
        seed("pong", stream(9, &[frame(true, 10, b"", M)])),
        seed(
            "close_1000",
            stream(11, &[frame(true, 8, &close_payload(1000, "bye"), M)]),
        ),
        seed("close_empty", stream(11, &[frame(true, 8, b"", M)])),
        seed(
            "close_bad_code",
            stream(11, &[frame(true, 8, &close_payload(1005, ""), M)]),
        ),
        seed("close_one_byte", stream(11, &[frame(true, 8, &[3], M)])),
        seed(
            "close_bad_utf8_reason",
            stream(11, &[frame(true, 8, &[0x0f, 0xa0, 0xff], M)]),
        ),
        seed("unmasked_text", stream(63, &[frame(true, 1, b"x", None)])),
        seed("bad_utf8", stream(1, &[frame(true, 1, &[b'a', 0xff], M)])),
        seed("reserved_opcode", stream(63, &[frame(true, 3, b"x", M)])),
        seed("rsv1_set", {
            let mut f = frame(true, 1, b"x", M);
            f[0] |= 0x40;
            stream(63, &[f])
        }),
        seed("fragmented_ping", stream(63, &[frame(false, 9, b"x", M)])),
        seed("ping_too_long", stream(63, &[frame(true, 9, &[0; 126], M)])),
        seed("continuation_first", stream(63, &[frame(true, 0, b"x", M)])),
        seed(
            "text_inside_fragment",
            stream(63, &[frame(false, 1, b"a", M), frame(true, 1, b"b", M)]),
        ),
        seed("non_minimal_len", {
            // 5 bytes announced with the 16-bit form.
            let mut f = vec![0x81, 0x80 | 126, 0, 5];
            f.extend_from_slice(&M.unwrap());
            f.extend_from_slice(b"hello");
            stream(63, &[f])
        }),
        seed(
            "header_only",
            stream(
                63,
                &[vec![0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4]],
            ),
        ),
        seed(
            "many_messages",
            stream(
                17,
                &[
                    hello.clone(),
                    frame(true, 9, b"", M),
                    frame(true, 2, b"bin", M),
                    hello,
                    frame(true, 8, &close_payload(4000, "done"), M),
                ],
            ),
        ),
    ]
}

/// Chunk selector (first % 9 + 1), then the bytes.
fn utf8_case(chunk: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![chunk];
    v.extend_from_slice(body);
    v
}

pub(crate) fn utf8() -> Seeds {
    vec![
        seed("ascii", utf8_case(8, b"hello world")),
        seed("two_byte", utf8_case(0, "é ß".as_bytes())),
        seed("three_byte", utf8_case(1, "客服".as_bytes())),
        seed("four_byte", utf8_case(2, "😀🎉".as_bytes())),
        seed("max_code_point", utf8_case(3, "\u{10FFFF}".as_bytes())),
        seed("bom", utf8_case(4, "\u{FEFF}x".as_bytes())),
        seed("nul", utf8_case(5, b"a\0b")),
        seed("truncated_3", utf8_case(6, &"客".as_bytes()[..2])),
        seed("truncated_4", utf8_case(7, &"😀".as_bytes()[..3])),
        seed("lone_continuation", utf8_case(0, &[0x80])),
        seed("overlong_slash", utf8_case(0, &[0xc0, 0xaf])),
        seed("overlong_3", utf8_case(0, &[0xe0, 0x80, 0xaf])),
        seed("surrogate", utf8_case(1, &[0xed, 0xa0, 0x80])),
        seed("above_max", utf8_case(2, &[0xf4, 0x90, 0x80, 0x80])),
        seed("f5_lead", utf8_case(3, &[0xf5, 0x80, 0x80, 0x80])),
        seed("ff_byte", utf8_case(4, &[b'a', 0xff])),
        seed("lead_then_ascii", utf8_case(5, &[0xe4, b'a'])),
        seed("mixed", utf8_case(8, "a é 客 😀 z".as_bytes())),
        seed("empty", utf8_case(0, b"")),
        seed("min_4_byte", utf8_case(1, "\u{10000}".as_bytes())),
        seed(
            "last_before_surrogates",
            utf8_case(2, "\u{D7FF}".as_bytes()),
        ),
        seed(
            "first_after_surrogates",
            utf8_case(3, "\u{E000}".as_bytes()),
        ),
        seed("overlong_4", utf8_case(4, &[0xf0, 0x80, 0x80, 0xaf])),
        seed("c1_lead", utf8_case(5, &[0xc1, 0xbf])),
        seed("lead_at_end", utf8_case(6, b"abc\xe5")),
        seed("cjk_sentence", utf8_case(8, "你好，客服在吗？".as_bytes())),
    ]
}

fn deflated(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(Deflater::new(6, 15).deflate(msg, &mut out));
    out
}

/// A frame with RSV1 (compressed) set.
fn rsv1(mut f: Vec<u8>) -> Vec<u8> {
    f[0] |= 0x40;
    f
}

/// Seeds for `ws_decoder` with permessage-deflate on (bit 7 of the first byte).
pub(crate) fn ws_decoder_deflate() -> Seeds {
    let z = deflated("客服 hello hello hello".as_bytes());
    let (a, b) = z.split_at(z.len() / 2);
    let bomb = deflated(&[0u8; 60_000]);
    vec![
        seed(
            "deflate_text",
            stream(0x80 | 63, &[rsv1(frame(true, 1, &z, M))]),
        ),
        seed(
            "deflate_binary_bytewise",
            stream(0x80, &[rsv1(frame(true, 2, &z, M))]),
        ),
        seed(
            "deflate_fragmented_with_ping",
            stream(
                0x80 | 4,
                &[
                    rsv1(frame(false, 1, a, M)),
                    frame(true, 9, b"p", M),
                    frame(true, 0, b, M),
                ],
            ),
        ),
        seed(
            "deflate_rsv1_on_ping",
            stream(0x80 | 63, &[rsv1(frame(true, 9, b"", M))]),
        ),
        seed(
            "deflate_rsv1_on_continuation",
            stream(
                0x80 | 63,
                &[frame(false, 1, b"a", M), rsv1(frame(true, 0, b"b", M))],
            ),
        ),
        seed(
            "deflate_bomb",
            stream(0x80 | 63, &[rsv1(frame(true, 2, &bomb, M))]),
        ),
        seed(
            "deflate_corrupt",
            stream(0x80 | 63, &[rsv1(frame(true, 2, &[0xff; 4], M))]),
        ),
        seed(
            "deflate_not_negotiated",
            stream(63, &[rsv1(frame(true, 1, &z, M))]),
        ),
    ]
}

pub(crate) fn ws_extensions() -> Seeds {
    [
        ("browser", "permessage-deflate; client_max_window_bits"),
        ("plain", "permessage-deflate"),
        (
            "all_four",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9",
        ),
        ("quoted", "permessage-deflate; server_max_window_bits=\"12\""),
        (
            "fallback",
            "permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=8",
        ),
        ("two_lines", "x-webkit-deflate-frame\nfoo; a=\"b,c\", permessage-deflate"),
        ("duplicate", "permessage-deflate; client_no_context_takeover; client_no_context_takeover"),
        ("unknown", "permessage-deflate; mux"),
        ("unterminated", "permessage-deflate; x=\"1"),
    ]
    .into_iter()
    .map(|(n, v)| seed(n, v))
    .collect()
}

pub(crate) fn ws_inflate() -> Seeds {
    let with_limit = |limit: u16, body: &[u8]| {
        let mut v = limit.to_le_bytes().to_vec();
        v.extend_from_slice(body);
        v
    };
    vec![
        seed(
            "hello",
            with_limit(100, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        ),
        seed(
            "stored",
            with_limit(
                100,
                &[0x00, 0x05, 0x00, 0xfa, 0xff, b'H', b'e', b'l', b'l', b'o'],
            ),
        ),
        seed(
            "json",
            with_limit(
                4096,
                &deflated(br#"{"type":"msg","text":"hi","to":"agent-1"}"#),
            ),
        ),
        seed("over_limit", with_limit(1000, &deflated(&[b'a'; 5000]))),
        seed("bomb", with_limit(u16::MAX, &deflated(&[0u8; 200_000]))),
        seed("reserved_block", with_limit(100, &[0xff, 0xff])),
    ]
}
