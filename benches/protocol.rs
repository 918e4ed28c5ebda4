//! Criterion benchmarks for the pure protocol layer (handshake, frames, masking, UTF-8, lines).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kefu::protocol::http::{parse_request, RequestLimits};
use kefu::protocol::text::{self, LineCodec};
use kefu::protocol::websocket::decoder::{Decoded, Decoder};
use kefu::protocol::websocket::frame::{self, OpCode};
use kefu::protocol::websocket::handshake::{check, response_101, HandshakeConfig};
use kefu::protocol::websocket::mask::apply_mask;
use kefu::protocol::websocket::utf8::Utf8Validator;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn handshake(c: &mut Criterion) {
    let raw = b"GET /ws?token=abc HTTP/1.1\r\nHost: kefu.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://kefu.example.com\r\nSec-WebSocket-Protocol: chat\r\nCookie: sid=0123456789abcdef\r\n\r\n";
    let limits = RequestLimits {
        max_header_size: 8192,
        max_body_size: 0,
    };
    let origins = ["https://kefu.example.com".to_string()];
    let protos = ["chat".to_string()];
    let cfg = HandshakeConfig {
        allowed_origins: &origins,
        subprotocols: &protos,
    };
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("parse_check_101", |b| {
        b.iter(|| {
            let (req, _) = parse_request(black_box(raw), &limits).unwrap().unwrap();
            let acc = check(&req, &cfg).unwrap();
            black_box(response_101(&acc, &[]))
        })
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_decode");
    let mut small = Vec::new();
    frame::encode_client(&mut small, true, OpCode::Text, b"hello, kefu 0123", MASK);
    let mut work = small.clone();
    let mut dec = Decoder::new(1 << 20);
    g.throughput(Throughput::Bytes(16));
    g.bench_function("small_text_16B", |b| {
        b.iter(|| {
            // Decoding unmasks in place, so restore the masked bytes (16 B copy) each time.
            work.copy_from_slice(&small);
            match dec.decode(black_box(&mut work)) {
                Ok(Decoded::Message(m, n)) => black_box((m, n)),
                _ => unreachable!(),
            };
        })
    });
    let mut large = Vec::new();
    frame::encode_client(
        &mut large,
        true,
        OpCode::Binary,
        &vec![7u8; 64 * 1024],
        MASK,
    );
    g.throughput(Throughput::Bytes(64 * 1024));
    g.bench_function("large_binary_64KiB", |b| {
        b.iter(|| {
            // Binary payloads need no restore: re-XOR just toggles the bytes; the header is intact.
            match dec.decode(black_box(&mut large)) {
                Ok(Decoded::Message(m, n)) => black_box((m, n)),
                _ => unreachable!(),
            };
        })
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_encode");
    let small = b"hello, kefu 0123";
    let mut out = Vec::with_capacity(128 * 1024);
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("small_text_16B", |b| {
        b.iter(|| {
            out.clear();
            frame::encode(&mut out, OpCode::Text, black_box(small));
            black_box(out.len())
        })
    });
    let large = vec![7u8; 64 * 1024];
    g.throughput(Throughput::Bytes(large.len() as u64));
    g.bench_function("large_binary_64KiB", |b| {
        b.iter(|| {
            out.clear();
            frame::encode(&mut out, OpCode::Binary, black_box(&large));
            black_box(out.len())
        })
    });
    g.finish();
}

fn unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    let mut data = vec![0x5au8; 1 << 20];
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("1MiB", |b| {
        b.iter(|| apply_mask(black_box(&mut data), MASK, 1))
    });
    g.finish();
}

/// `line` repeated until the text reaches 1 MiB (whole lines, so it stays valid UTF-8).
fn fill_1mib(line: &str) -> String {
    let mut s = String::with_capacity((1 << 20) + line.len());
    while s.len() < 1 << 20 {
        s.push_str(line);
    }
    s
}

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    let ascii = fill_1mib("customer service message 0123456789\n");
    let cjk = fill_1mib("您好，请问有什么可以帮您？Hello 客服 😀\n");
    for (name, text) in [("ascii_1MiB", ascii), ("mixed_cjk_1MiB", cjk)] {
        let bytes = text.into_bytes();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                // Fed in 4 KiB pieces as a text frame arriving over several reads would be.
                let mut v = Utf8Validator::new();
                for piece in bytes.chunks(4096) {
                    v.feed(black_box(piece)).unwrap();
                }
                black_box(v.is_complete())
            })
        });
    }
    g.finish();
}

fn lines(c: &mut Criterion) {
    let mut g = c.benchmark_group("text_lines");
    let mut buf = Vec::new();
    for i in 0..1000 {
        text::encode(
            &mut buf,
            format!("{{\"type\":\"say\",\"seq\":{i},\"msg\":\"hello\"}}").as_bytes(),
        );
    }
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("1000_lines", |b| {
        let mut codec = LineCodec::new(4096);
        b.iter(|| {
            let mut pos = 0;
            let mut n = 0;
            while let Ok(Some((line, used))) = codec.decode(&buf[pos..]) {
                black_box(line);
                pos += used;
                n += 1;
            }
            assert_eq!(n, 1000);
        })
    });
    g.finish();
}

criterion_group!(benches, handshake, decode, encode, unmask, utf8, lines);
criterion_main!(benches);
