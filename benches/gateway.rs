//! Criterion benchmarks for the gateway's hot paths: the bus codec, group fan-out (one frame
//! encoded once, copied to N send buffers) and the JSON routing of a chat message.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kefu::connection::buffer::OutBuf;
use kefu::gateway::bus::wire::{decode, encode, BusMsg, Kind};
use kefu::gateway::client_id::ConnId;
use kefu::protocol::websocket::frame::{server_header, OpCode};

const CHAT: &[u8] = br#"{"type":"say","from_client_id":"0001a2b3c4d5e6f70000000100000002","from_client_name":"Tom","to_client_id":"all","content":"hello, is anyone there?","time":"2026-11-23 15:00:00"}"#;

fn bus_codec(c: &mut Criterion) {
    let groups = ["room-1"];
    let msg = BusMsg::ToGroups {
        kind: Kind::Text,
        groups: groups.to_vec(),
        exclude: vec![],
        payload: CHAT,
    };
    let mut frame = Vec::new();
    encode(&msg, &mut frame);
    let mut g = c.benchmark_group("bus");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("encode_to_groups", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            encode(black_box(&msg), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("decode_to_groups", |b| {
        b.iter(|| black_box(decode(black_box(&frame)).unwrap().unwrap().1))
    });
    let one = BusMsg::ToClient {
        kind: Kind::Text,
        key: ConnId { slot: 7, gen: 3 },
        payload: CHAT,
    };
    g.bench_function("encode_decode_to_client", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            encode(black_box(&one), &mut out);
            black_box(decode(&out).unwrap().unwrap().1)
        })
    });
    g.finish();
}

/// One loop turn of room broadcasts: `MSGS` chat messages to each of `n` members, queued and
/// then written (to a sink, so only our side of the work is measured). `copy_*` copies each
/// frame into every member's buffer; `share_*` frames it once into the turn buffer and queues
/// ranges of it (what the worker does), so each member's turn is one contiguous range.
fn fanout(c: &mut Criterion) {
    const MSGS: usize = 10;
    let mut g = c.benchmark_group("fanout");
    let mut head = [0u8; 10];
    let hl = server_header(OpCode::Text, CHAT.len(), &mut head);
    let head = &head[..hl];
    for n in [100usize, 1000] {
        g.throughput(Throughput::Elements((n * MSGS) as u64));
        g.bench_function(format!("copy_{MSGS}_msgs_to_{n}"), |b| {
            let mut bufs: Vec<OutBuf> = (0..n).map(|_| OutBuf::default()).collect();
            b.iter(|| {
                for _ in 0..MSGS {
                    for o in bufs.iter_mut() {
                        o.push2(head, black_box(CHAT));
                    }
                }
                for o in bufs.iter_mut() {
                    o.flush_to(&mut std::io::sink(), &[]).unwrap();
                }
            })
        });
        g.bench_function(format!("share_{MSGS}_msgs_with_{n}"), |b| {
            let mut bufs: Vec<OutBuf> = (0..n).map(|_| OutBuf::default()).collect();
            let mut turn: Vec<u8> = Vec::new();
            b.iter(|| {
                turn.clear();
                for _ in 0..MSGS {
                    let start = turn.len();
                    turn.extend_from_slice(head);
                    turn.extend_from_slice(black_box(CHAT));
                    for o in bufs.iter_mut() {
                        o.push_turn(start, turn.len());
                    }
                }
                for o in bufs.iter_mut() {
                    o.flush_to(&mut std::io::sink(), &turn).unwrap();
                }
            })
        });
    }
    g.finish();
}

fn chat_routing(c: &mut Criterion) {
    #[derive(serde::Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum In {
        Say {
            to_client_id: String,
            content: String,
        },
        Pong,
    }
    let incoming = br#"{"type":"say","to_client_id":"all","content":"hello, is anyone there?"}"#;
    let mut g = c.benchmark_group("chat");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_say_build_reply", |b| {
        b.iter(|| {
            let m: In = serde_json::from_slice(black_box(incoming)).unwrap();
            let In::Say { to_client_id, content } = m else {
                unreachable!()
            };
            let out = serde_json::json!({"type":"say","from_client_id":"0001a2b3c4d5e6f70000000100000002",
                "from_client_name":"Tom","to_client_id":to_client_id,"content":content,"time":"2026-11-23 15:00:00"});
            black_box(serde_json::to_vec(&out).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bus_codec, fanout, chat_routing);
criterion_main!(benches);
