//! `bus_wire`, `cluster_batch`, `handover_state` seeds, made by kefu's codecs to track the format.

use crate::websocket::frame;
use crate::{seed, Seeds};
use kefu::config::Scheme;
use kefu::connection::handover::{ConnRecord, InputRecord, ProtoRecord, StateRecord};
use kefu::connection::Deflate;
use kefu::gateway::bus::wire::{encode, BusMsg, Kind};
use kefu::gateway::client_id::ConnId;
use kefu::protocol::websocket::decoder::DecoderState;

fn bus(msgs: &[BusMsg<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        encode(m, &mut out);
    }
    out
}

pub(crate) fn bus_wire() -> Seeds {
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
        .map(|(n, m)| seed(n, bus(std::slice::from_ref(m))))
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

pub(crate) fn cluster_batch() -> Seeds {
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
    push(
        &mut one,
        0x0200_0000_0000_0001,
        0,
        0x0100_0000_0000_0002,
        &up,
    );
    let mut two = one.clone();
    push(
        &mut two,
        0x0200_0000_0000_0001,
        0,
        0x0100_0000_0000_0002,
        &msg,
    );
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

fn dstate(
    frag_opcode: Option<u8>,
    assembled: &[u8],
    progress: usize,
    pending: &[u8],
) -> DecoderState {
    DecoderState {
        frag_opcode,
        assembled: assembled.to_vec(),
        frame_progress: progress,
        utf8_pending: pending.to_vec(),
        ..DecoderState::default()
    }
}

pub(crate) fn handover_state() -> Seeds {
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
        seed(
            "fresh_text",
            state_case(&fresh, &frame(true, 1, b"hi", mask)),
        ),
        seed(
            "continue_text",
            state_case(
                &in_text,
                &frame(true, 0, "\u{a9}llo".as_bytes()[1..].as_ref(), mask),
            ),
        ),
        seed(
            "continue_binary",
            state_case(&in_binary, &frame(true, 0, b"\x03", mask)),
        ),
        seed("bad_opcode", state_case(&bad_op, b"")),
        seed("bad_utf8", state_case(&bad_utf8, b"")),
        seed(
            "progress_past_input",
            state_case(&far, &frame(true, 2, b"x", mask)),
        ),
        seed(
            "conn_record",
            state_case(&record, &frame(true, 1, b"hi", mask)),
        ),
        seed("conn_record_text", state_case(&text, b"")),
    ]
}
