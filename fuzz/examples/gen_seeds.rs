//! Writes the committed seed corpora, `fuzz/seeds/<target>/<name>`, for every fuzz target.
//!
//!     cd fuzz && cargo run --example gen_seeds            # rewrites seeds/ in place
//!
//! Seeds are small, meaningful inputs the fuzzer mutates from instead of starting from nothing:
//! real upgrade requests, masked and unmasked, fragmented and control WebSocket frames, text
//! lines, UTF-8 edge cases, and one encoded bus message of every kind (made with the codec
//! itself, so they stay valid when the wire format changes: rerun this program).
//!
//! Input layouts follow the targets: `ws_decoder`, `text_lines` and `utf8` read their first
//! byte as a parameter (chunk size; `text_lines` also the line limit), the rest is the stream.

use kefu::config::Scheme;
use kefu::connection::handover::{ConnRecord, InputRecord, ProtoRecord, StateRecord};
use kefu::connection::Deflate;
use kefu::gateway::bus::wire::{encode, BusMsg, Kind};
use kefu::gateway::client_id::ConnId;
use kefu::protocol::websocket::decoder::DecoderState;
use kefu::protocol::websocket::deflate::Deflater;
use kefu::protocol::gateway::frame::{self, Cmd, Header, FLAG_BODY_IS_SCALAR};
use kefu::tls::record::{ContentType, DirectionKeys, RecordLayer, Suite, TlsSecrets, Version};
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let mut n = 0;
    for (target, seeds) in [
        ("http_request", http_request()),
        ("ws_decoder", [ws_decoder(), ws_decoder_deflate()].concat()),
        ("text_lines", text_lines()),
        ("utf8", utf8()),
        ("ws_extensions", ws_extensions()),
        ("ws_inflate", ws_inflate()),
        ("bus_wire", bus_wire()),
        ("cluster_batch", cluster_batch()),
        ("handover_state", handover_state()),
        ("gateway_frame", gateway_frame()),
        ("php_serialize", php_serialize()),
        ("register_line", register_line()),
        ("tls_record", tls_record()),
    ] {
        let dir = root.join(target);
        // Start clean so a renamed seed does not linger.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir seeds");
        for (name, bytes) in seeds {
            write(&dir, &name, &bytes);
            n += 1;
        }
    }
    println!("wrote {n} seeds under {}", root.display());
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

type Seeds = Vec<(String, Vec<u8>)>;

fn seed(name: &str, bytes: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
    (name.to_string(), bytes.into())
}

const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{KEY}Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

fn http_request() -> Seeds {
    let mut s = vec![
        seed("upgrade_minimal", upgrade("/", "")),
        seed("upgrade_path_query", upgrade("/ws?id=42&x=%20", "")),
        seed("upgrade_origin_ok", upgrade("/ws", "Origin: http://a.example\r\n")),
        seed("upgrade_origin_bad", upgrade("/ws", "Origin: http://evil.example\r\n")),
        seed(
            "upgrade_subprotocols",
            upgrade("/", "Sec-WebSocket-Protocol: json, chat\r\n"),
        ),
        seed(
            "upgrade_unknown_subprotocol",
            upgrade("/", "Sec-WebSocket-Protocol: mqtt\r\n"),
        ),
        seed(
            "upgrade_cookies",
            upgrade("/", "Cookie: a=1; b=two; empty=\r\n"),
        ),
        seed(
            "upgrade_mixed_case",
            "GET / HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
        ),
        seed(
            "upgrade_version_8",
            upgrade("/", "").replace("Version: 13", "Version: 8"),
        ),
        seed("upgrade_no_key", upgrade("/", "").replace(KEY, "")),
        seed(
            "upgrade_bad_key",
            upgrade("/", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
        ),
        seed("upgrade_post", upgrade("/", "").replacen("GET", "POST", 1)),
        seed("upgrade_http10", upgrade("/", "").replace("HTTP/1.1", "HTTP/1.0")),
        seed("get_plain", "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
        seed(
            "get_close",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        seed("get_http10", "GET / HTTP/1.0\r\n\r\n"),
        seed(
            "post_json",
            "POST /gateway/send_to_all HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"message\":\"hi\"}",
        ),
        seed(
            "post_empty_body",
            "POST /api HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        ),
        seed(
            "post_body_too_large",
            "POST /api HTTP/1.1\r\nContent-Length: 5000\r\n\r\nxx",
        ),
        seed(
            "post_bad_length",
            "POST /api HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n",
        ),
        seed(
            "post_two_lengths",
            "POST /api HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        ),
        seed(
            "post_chunked",
            "POST /api HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        seed(
            "pipelined_three",
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nokGET /c HTTP/1.1\r\n\r\n",
        ),
        seed("partial_head", "GET / HTTP/1.1\r\nHost: x\r\n"),
        seed("bare_lf", "GET / HTTP/1.1\nHost: x\n\n"),
        seed(
            "tls_client_hello",
            &b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"[..],
        ),
        seed(
            "header_obs_fold",
            "GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n",
        ),
        seed(
            "utf8_path",
            "GET /chat/%E5%AE%A2%E6%9C%8D?q=\u{5ba2} HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
    ];
    // A head just under and just over the 2 KiB limit the target uses.
    for (name, n) in [("head_near_limit", 1900), ("head_over_limit", 2100)] {
        let pad = "a".repeat(n);
        s.push(seed(
            name,
            format!("GET / HTTP/1.1\r\nX-Pad: {pad}\r\n\r\n"),
        ));
    }
    s
}

/// One client frame; `mask` None means unmasked (a protocol error for a server).
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
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

fn ws_decoder() -> Seeds {
    let hello = frame(true, 1, b"Hello", M);
    vec![
        seed("text_whole", stream(63, &[hello.clone()])),
        seed("text_byte_by_byte", stream(0, &[hello.clone()])),
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

/// `max_line` is the first byte (also the chunk size: first % 7 + 1), then the stream.
fn lines(max_line: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![max_line];
    v.extend_from_slice(body);
    v
}

fn text_lines() -> Seeds {
    let long = "x".repeat(200);
    vec![
        seed("one_line", lines(64, b"hello\n")),
        seed("crlf", lines(64, b"one\r\ntwo\n")),
        seed("many", lines(20, b"a\nbb\nccc\n\n\ndddd\n")),
        seed("unterminated_tail", lines(64, b"done\npartial")),
        seed("empty_lines", lines(8, b"\n\n\n")),
        seed("lone_cr", lines(16, b"a\rb\n\r\n\r")),
        seed("exactly_max", lines(5, b"12345\n")),
        seed("one_over_max", lines(5, b"123456\n")),
        seed("max_with_cr", lines(5, b"12345\r\n")),
        seed("max_zero", lines(0, b"\nx\n")),
        seed("long_line", lines(255, format!("{long}\nshort\n").as_bytes())),
        seed(
            "json_lines",
            lines(
                128,
                b"{\"type\":\"login\",\"client_name\":\"t\",\"room_id\":9}\n{\"type\":\"say\",\"to_client_id\":\"all\",\"content\":\"hi\"}\n",
            ),
        ),
        seed("utf8_lines", lines(64, "客服\n😀\r\n".as_bytes())),
        seed("binary_bytes", lines(32, &[0, 255, 10, 13, 10, 128, 10])),
        seed("only_newline", lines(1, b"\n")),
        seed("no_newline", lines(64, b"never terminated")),
        seed("crlf_split_chunks", lines(6, b"ab\r\ncd\r\nef\r\n")),
        seed("long_then_short", lines(3, b"abcdef\nab\n")),
        seed("trailing_cr_only", lines(64, b"x\r")),
        seed("nul_in_line", lines(64, b"a\0b\n")),
        seed("text_protocol_say", lines(200, "{\"type\":\"say\",\"content\":\"客服\"}\r\n".as_bytes())),
    ]
}

/// Chunk selector (first % 9 + 1), then the bytes.
fn utf8_case(chunk: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![chunk];
    v.extend_from_slice(body);
    v
}

fn utf8() -> Seeds {
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

fn bus(msgs: &[BusMsg<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        encode(m, &mut out);
    }
    out
}

fn bus_wire() -> Seeds {
    let k = ConnId { slot: 3, gen: 9 };
    let k2 = ConnId {
        slot: u32::MAX,
        gen: 1,
    };
    let json = br#"{"name":"A","o":{"x":1}}"#;
    let msgs: Vec<(&str, BusMsg<'_>)> = vec![
        (
            "hello",
            BusMsg::Hello {
                inc: 0x0123_4567_89ab_cdef,
                worker_id: 2,
            },
        ),
        ("up", BusMsg::Up(k)),
        ("down", BusMsg::Down(k2)),
        ("bind", BusMsg::Bind(k, "uid-7")),
        ("unbind", BusMsg::Unbind(k)),
        ("join", BusMsg::Join(k, "房间1")),
        ("leave", BusMsg::Leave(k, "")),
        ("session", BusMsg::Session(k, json)),
        (
            "to_client_text",
            BusMsg::ToClient {
                kind: Kind::Text,
                key: k,
                payload: b"hello",
            },
        ),
        (
            "to_client_binary",
            BusMsg::ToClient {
                kind: Kind::Binary,
                key: k2,
                payload: &[0, 1, 255],
            },
        ),
        (
            "to_clients",
            BusMsg::ToClients {
                kind: Kind::Text,
                keys: vec![k, k2, ConnId { slot: 0, gen: 0 }],
                payload: b"many",
            },
        ),
        (
            "to_groups",
            BusMsg::ToGroups {
                kind: Kind::Text,
                groups: vec!["g1", "g2"],
                exclude: vec![k],
                payload: b"group msg",
            },
        ),
        (
            "to_groups_empty",
            BusMsg::ToGroups {
                kind: Kind::Binary,
                groups: vec![],
                exclude: vec![],
                payload: b"",
            },
        ),
        (
            "to_uids",
            BusMsg::ToUids {
                kind: Kind::Text,
                uids: vec!["u1", "7"],
                payload: b"uids",
            },
        ),
        (
            "to_all",
            BusMsg::ToAll {
                kind: Kind::Binary,
                exclude: vec![k2],
                payload: b"\x00everyone",
            },
        ),
        ("cmd_join", BusMsg::CmdJoin(k, "g1")),
        ("cmd_leave", BusMsg::CmdLeave(k, "g1")),
        ("cmd_bind", BusMsg::CmdBind(k, "u1")),
        ("cmd_unbind", BusMsg::CmdUnbind(k)),
        ("cmd_set_session", BusMsg::CmdSetSession(k, json)),
        ("cmd_update_session", BusMsg::CmdUpdateSession(k, b"{}")),
        ("cmd_close", BusMsg::CmdClose(k, None)),
        (
            "cmd_close_last_text",
            BusMsg::CmdClose(k, Some((Kind::Text, b"bye"))),
        ),
        (
            "cmd_close_last_binary",
            BusMsg::CmdClose(k2, Some((Kind::Binary, b""))),
        ),
        ("cmd_destroy", BusMsg::CmdDestroy(k)),
        ("ungroup", BusMsg::Ungroup("g2")),
    ];
    let mut s: Seeds = msgs
        .iter()
        .map(|(n, m)| seed(n, bus(&[m.clone()])))
        .collect();
    // What a link carries: a hello, then a stream of frames back to back.
    let all: Vec<BusMsg<'_>> = msgs.iter().map(|(_, m)| m.clone()).collect();
    s.push(seed("stream_all_kinds", bus(&all)));
    // Malformed frames, each next to a valid one so mutations find both sides.
    let up = bus(&[BusMsg::Up(k)]);
    let mut bad_tag = up.clone();
    bad_tag[4] = 200;
    s.push(seed("bad_tag", bad_tag));
    let mut truncated = up.clone();
    truncated[0] -= 1; // body one byte short of its fields
    truncated.pop();
    s.push(seed("truncated_field", truncated));
    let mut trailing = up.clone();
    trailing[0] += 1;
    trailing.push(0);
    s.push(seed("trailing_byte", trailing));
    let mut bad_kind = bus(&[BusMsg::ToClient {
        kind: Kind::Text,
        key: k,
        payload: b"x",
    }]);
    bad_kind[5] = 3;
    s.push(seed("bad_kind", bad_kind));
    let mut bad_utf8 = bus(&[BusMsg::Bind(k, "ab")]);
    let n = bad_utf8.len();
    bad_utf8[n - 1] = 0xff;
    s.push(seed("bad_utf8", bad_utf8));
    let mut forged_count = bus(&[BusMsg::ToClients {
        kind: Kind::Text,
        keys: vec![k],
        payload: b"",
    }]);
    forged_count[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
    s.push(seed("forged_count", forged_count));
    s.push(seed("too_large", (64u32 * 1024 * 1024 + 1).to_le_bytes()));
    s.push(seed("partial_frame", up[..up.len() - 3].to_vec()));
    s
}

fn cluster_batch() -> Seeds {
    use kefu::cluster::wire::{begin, push, Header};
    let h = Header {
        node: 2,
        epoch: 1_795_893_022_585_690,
        seq: 7,
    };
    let k = ConnId { slot: 1, gen: 3 };
    let mut up = Vec::new();
    encode(&BusMsg::Up(k), &mut up);
    let mut msg = Vec::new();
    encode(
        &BusMsg::ToClient {
            kind: Kind::Text,
            key: k,
            payload: b"hello",
        },
        &mut msg,
    );
    let mut empty = Vec::new();
    begin(&mut empty, h);
    let mut one = empty.clone();
    push(&mut one, 0x0200_0000_0000_0001, 0, 0x0100_0000_0000_0002, &up);
    let mut two = one.clone();
    push(&mut two, 0x0200_0000_0000_0001, 0, 0x0100_0000_0000_0002, &msg);
    let mut truncated = two.clone();
    truncated.truncate(two.len() - 3);
    let mut huge = empty.clone();
    push(&mut huge, 1, 0, 2, &u32::MAX.to_le_bytes());
    let mut bad_version = one.clone();
    bad_version[0] = 9;
    vec![
        seed("empty", empty),
        seed("one_record", one),
        seed("two_records", two),
        seed("truncated", truncated),
        seed("frame_too_large", huge),
        seed("bad_version", bad_version),
    ]
}

/// `handover_state`: 2 bytes of body length, a binary record body, then the stream.
fn state_case<T: serde::Serialize>(rec: &T, stream: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    kefu::protocol::record::encode(rec, &mut frame);
    let body = &frame[kefu::protocol::record::HEAD..];
    let mut v = (body.len() as u16).to_le_bytes().to_vec();
    v.extend_from_slice(body);
    v.extend_from_slice(stream);
    v
}

fn dstate(frag_opcode: Option<u8>, assembled: &[u8], progress: usize, pending: &[u8]) -> DecoderState {
    DecoderState {
        frag_opcode,
        assembled: assembled.to_vec(),
        frame_progress: progress,
        utf8_pending: pending.to_vec(),
        ..DecoderState::default()
    }
}

fn handover_state() -> Seeds {
    let mask = Some([1, 2, 3, 4]);
    let fresh = DecoderState::default();
    // "héllo" cut inside the é: one byte (0xC3) pending, the rest to come.
    let in_text = dstate(Some(1), b"h\xc3", 0, b"\xc3");
    let in_binary = dstate(Some(2), b"\x00\x01\x02", 0, b"");
    let bad_op = dstate(Some(9), b"", 0, b"");
    let bad_utf8 = dstate(Some(1), b"", 0, b"\x80");
    let far = dstate(None, b"", 99, b"");
    let record = ConnRecord {
        slot: 3,
        gen: 7,
        scheme: Scheme::Websocket,
        state: StateRecord::Open,
        proto: ProtoRecord::Ws {
            state: DecoderState::default(),
        },
        framing: Some(Scheme::Websocket),
        unread: Vec::new(),
        unsent: b"hi".to_vec(),
        bytes_read: 10,
        bytes_written: 2,
        remote: "127.0.0.1:5000".parse().expect("addr"),
        idle_ms: 5,
        deadline_ms: None,
        input: InputRecord::Flowing,
        app_connected: true,
        requests_served: 0,
        deflate: Deflate::Off,
        tls: None,
    };
    let mut text = record.clone();
    text.proto = ProtoRecord::Text;
    text.framing = Some(Scheme::Text);
    text.remote = "[::1]:80".parse().expect("addr");
    text.deadline_ms = Some(30_000);
    vec![
        seed("fresh_text", state_case(&fresh, &frame(true, 1, b"hi", mask))),
        seed(
            "continue_text",
            state_case(&in_text, &frame(true, 0, "\u{a9}llo".as_bytes()[1..].as_ref(), mask)),
        ),
        seed("continue_binary", state_case(&in_binary, &frame(true, 0, b"\x03", mask))),
        seed("bad_opcode", state_case(&bad_op, b"")),
        seed("bad_utf8", state_case(&bad_utf8, b"")),
        seed("progress_past_input", state_case(&far, &frame(true, 2, b"x", mask))),
        seed("conn_record", state_case(&record, &frame(true, 1, b"hi", mask))),
        seed("conn_record_text", state_case(&text, b"")),
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
fn ws_decoder_deflate() -> Seeds {
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

fn ws_extensions() -> Seeds {
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

fn ws_inflate() -> Seeds {
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

fn gw_frame(cmd: Cmd, flag: u8, ext: &[u8], body: &[u8]) -> Vec<u8> {
    let head = Header {
        local_ip: 0x7f00_0001,
        local_port: 2300,
        client_ip: 0x7f00_0001,
        client_port: 40000,
        connection_id: 1,
        flag,
        gateway_port: 7272,
        ..Header::new(cmd)
    };
    let mut out = Vec::new();
    frame::encode(&mut out, &head, ext, body);
    out
}

fn gateway_frame() -> Seeds {
    let worker = gw_frame(
        Cmd::WorkerConnect,
        FLAG_BODY_IS_SCALAR,
        b"",
        br#"{"worker_key":"BusinessWorker:0","secret_key":""}"#,
    );
    let send = gw_frame(Cmd::SendToOne, FLAG_BODY_IS_SCALAR, b"", b"hello");
    let mut two = worker.clone();
    two.extend_from_slice(&send);
    let mut huge = send.clone();
    huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut short = send.clone();
    short[..4].copy_from_slice(&27u32.to_be_bytes());
    let mut overrun = send.clone();
    overrun[24..28].copy_from_slice(&100u32.to_be_bytes());
    let mut unknown = send.clone();
    unknown[4] = 99;
    vec![
        seed("worker_connect", worker),
        seed("send_to_one", send.clone()),
        seed("two_frames", two),
        seed(
            "send_to_group",
            gw_frame(
                Cmd::SendToGroup,
                FLAG_BODY_IS_SCALAR,
                br#"{"group":["room"],"exclude":null}"#,
                b"hi",
            ),
        ),
        seed(
            "set_session",
            gw_frame(Cmd::SetSession, 0, b"a:1:{s:3:\"uid\";s:1:\"7\";}", b"s:0:\"\";"),
        ),
        seed("kick_null", gw_frame(Cmd::Kick, 0, b"", b"N;")),
        seed("ping", gw_frame(Cmd::Ping, 0, b"", b"s:0:\"\";")),
        seed("huge_length", huge),
        seed("short_length", short),
        seed("ext_overrun", overrun),
        seed("unknown_cmd", unknown),
        seed("partial", send[..20].to_vec()),
    ]
}

fn php_serialize() -> Seeds {
    [
        ("null", "N;"),
        ("bools", "a:2:{i:0;b:1;i:1;b:0;}"),
        ("int", "i:-9223372036854775808;"),
        ("float", "d:1.0E+25;"),
        ("float_inf", "d:-INF;"),
        ("string", "s:5:\"a\"b;c\";"),
        ("utf8", "s:6:\"\u{5ba2}\u{670d}\";"),
        (
            "session",
            "a:3:{s:3:\"uid\";s:2:\"42\";s:4:\"tags\";a:2:{i:0;s:1:\"a\";i:1;s:1:\"b\";}s:1:\"n\";d:0.5;}",
        ),
        ("numeric_key", "a:1:{s:1:\"5\";i:1;}"),
        ("nested", "a:1:{i:0;a:1:{i:0;a:1:{i:0;a:0:{}}}}"),
        ("object", "O:8:\"stdClass\":0:{}"),
        ("reference", "a:2:{i:0;i:1;i:1;R:2;}"),
        ("duplicate", "a:2:{i:0;i:1;i:0;i:2;}"),
        ("huge_string", "s:4294967295:\"\";"),
        ("huge_array", "a:4000000000:{}"),
        ("truncated", "a:1:{s:3:\"ui"),
        ("trailing", "N;N;"),
    ]
    .into_iter()
    .map(|(n, s)| seed(n, s))
    .collect()
}

fn register_line() -> Seeds {
    vec![
        seed(
            "gateway_connect",
            "{\"event\":\"gateway_connect\", \"address\":\"127.0.0.1:2300\", \"secret_key\":\"\"}\n",
        ),
        seed("worker_connect", "{\"event\":\"worker_connect\",\"secret_key\":\"k\"}\n"),
        seed("ping", "{\"event\":\"ping\"}\r\n"),
        seed(
            "broadcast",
            "{\"event\":\"broadcast_addresses\",\"addresses\":[\"127.0.0.1:2300\",\"10.0.0.2:2301\"]}\n",
        ),
        seed("bad_address", "{\"event\":\"gateway_connect\",\"address\":\"x\"}\n"),
        seed("unknown", "{\"event\":\"nope\"}\n{\"event\":\"ping\"}\n"),
        seed("not_json", "hello\n"),
    ]
}

/// The fuzz target's keys for first byte `first` (see `fuzz_targets/tls_record.rs`), as the
/// client holds them: what it seals, the target's server opens.
fn tls_client(first: u8) -> RecordLayer {
    let version = if first & 1 == 0 { Version::Tls13 } else { Version::Tls12 };
    let (suite, len) = match (first >> 1) % 3 {
        0 => (Suite::Aes128Gcm, 16),
        1 => (Suite::Aes256Gcm, 32),
        _ => (Suite::Chacha20Poly1305, 32),
    };
    let keys = |seed: u8| DirectionKeys {
        key: (0..len).map(|i| i ^ seed).collect(),
        iv: (0..12u8).map(|i| i.wrapping_mul(seed)).collect(),
        seq: u64::from(seed),
    };
    // The server's rx (seed 5) is the client's tx.
    RecordLayer::new(TlsSecrets { version, suite, tx: keys(5), rx: keys(3) }).expect("keys")
}

/// Records a client of every version and AEAD sends: data, data then close_notify, a TLS 1.3
/// KeyUpdate, a TLS 1.2 renegotiation, a fatal alert, a record cut short, an oversized and a
/// foreign header.
fn tls_record() -> Seeds {
    let mut out = Vec::new();
    for first in 0..6u8 {
        let name = match first {
            0 => "tls13_aes128",
            1 => "tls12_aes128",
            2 => "tls13_aes256",
            3 => "tls12_aes256",
            4 => "tls13_chacha",
            _ => "tls12_chacha",
        };
        let mut c = tls_client(first);
        let mut data = vec![first];
        c.seal_data(b"hello \xe5\xae\xa2\xe6\x9c\x8d\n", &mut data).unwrap();
        out.push(seed(&format!("{name}_data"), data.clone()));
        c.seal(ContentType::Alert, &[1, 0], &mut data).unwrap();
        out.push(seed(&format!("{name}_then_close_notify"), data));
        let mut c = tls_client(first);
        let mut msg = vec![first];
        if first & 1 == 0 {
            c.seal(ContentType::Handshake, &[24, 0, 0, 1, 1], &mut msg).unwrap();
            out.push(seed(&format!("{name}_key_update"), msg));
        } else {
            c.seal(ContentType::Handshake, &[1, 0, 0, 0], &mut msg).unwrap();
            out.push(seed(&format!("{name}_renegotiation"), msg));
        }
        let mut c = tls_client(first);
        let mut alert = vec![first];
        c.seal(ContentType::Alert, &[2, 40], &mut alert).unwrap();
        out.push(seed(&format!("{name}_fatal_alert"), alert));
        let mut c = tls_client(first);
        let mut cut = vec![first];
        c.seal_data(&[7; 300], &mut cut).unwrap();
        cut.truncate(200);
        out.push(seed(&format!("{name}_cut_short"), cut));
    }
    out.push(seed("oversized_header", [0u8, 23, 3, 3, 0x41, 0x01, 0, 0]));
    out.push(seed("foreign_header", [1u8, 22, 3, 1, 0, 4, 1, 0, 0, 0]));
    out
}
