//! permessage-deflate (RFC 7692) against the real binary: an independent client (Python
//! `websockets`, tests/clients/ws_deflate.py) negotiating it, raw frames for what a library
//! would never send (a decompression bomb, RSV1 where it is not allowed), and a room where some
//! members compress and some do not.

mod common;

use common::ws::{Frame, Ws};
use common::{Instance, SEC};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{json, Value};
use std::process::Command;

const OFFER: (&str, &str) = (
    "Sec-WebSocket-Extensions",
    "permessage-deflate; client_max_window_bits",
);

fn python(args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/ws_deflate.py");
    let o = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 (with `pip install websockets`)");
    assert!(
        o.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("client prints JSON")
}

/// Raw DEFLATE of `msg` without the 4-byte tail (RFC 7692 §7.2.1), by flate2 directly.
fn deflate(msg: &[u8]) -> Vec<u8> {
    let mut z = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(msg.len() / 100 + 1024);
    let mut input = msg;
    loop {
        out.reserve(64 * 1024);
        let before = z.total_in();
        z.compress_vec(input, &mut out, FlushCompress::Sync)
            .unwrap();
        input = &input[(z.total_in() - before) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut z = Decompress::new(false);
    let mut data = payload.to_vec();
    data.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    z.decompress_vec(&data, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

/// A raw client that offered permessage-deflate and got it.
fn deflate_client(addr: &str) -> Ws {
    let (ws, status, head) = Ws::try_connect(addr, "/", &[OFFER]);
    assert_eq!(status, 101);
    assert!(
        head.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        ),
        "{head}"
    );
    ws
}

/// Send one message compressed (RSV1 on the first frame).
fn send_compressed(ws: &mut Ws, opcode: u8, msg: &[u8]) {
    // Ws::send_frame has no RSV bits: RSV1 goes in with the opcode, in the same byte.
    ws.send_frame(true, 0x40 | opcode, &deflate(msg));
}

fn worker_peak_kib(s: &Instance) -> u64 {
    let pid = s.worker_pids()[0];
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn python_websockets_negotiates_and_echoes() {
    let s = Instance::echo(1).start();
    let r = python(&["echo", &s.addr("websocket")]);
    assert_eq!(
        r["extensions"],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert_eq!(r["echoed"], 7);
}

#[test]
fn compressed_echo_on_the_wire_and_threshold() {
    let s = Instance::echo(1).start();
    let mut ws = deflate_client(&s.addr("websocket"));
    let big = json!({"type":"history","items":(0..200).map(|i| json!({"id":i,"text":"您好，请问有什么可以帮您？"})).collect::<Vec<_>>()}).to_string();
    send_compressed(&mut ws, 1, big.as_bytes());
    let f = ws.recv_frame().unwrap();
    assert!(f.rsv1 && f.fin && f.opcode == 1, "{:?}", (f.rsv1, f.opcode));
    assert!(f.payload.len() < big.len() / 5, "{}", f.payload.len());
    assert_eq!(inflate(&f.payload), big.as_bytes());
    // Below the 1024-byte default threshold the answer goes plain, whatever the client sent.
    send_compressed(&mut ws, 1, b"short");
    let f = ws.recv_frame().unwrap();
    assert_eq!((f.rsv1, f.payload), (false, b"short".to_vec()));
    // Plain messages from the client are fine on a deflate connection.
    ws.send_text(&big);
    assert!(ws.recv_frame().unwrap().rsv1);
    // A control frame never has RSV1: a compressed ping is a protocol error.
    ws.send_frame(true, 0x40 | 9, b"");
    assert_eq!(ws.recv_close_code(), Some(1002));

    // Without an offer: no extension header and RSV1 refused.
    let (mut plain, status, head) = Ws::try_connect(&s.addr("websocket"), "/", &[]);
    assert_eq!(status, 101);
    assert!(!head.contains("Extensions"));
    plain.send_text(&big);
    let f = plain.recv_frame().unwrap();
    assert_eq!((f.rsv1, f.payload.len()), (false, big.len()));
    send_compressed(&mut plain, 1, big.as_bytes());
    assert_eq!(plain.recv_close_code(), Some(1002));
}

#[test]
fn listener_switch_and_window_offers() {
    let s = Instance::new("echo", 1, &["websocket", "http"])
        .config("[websocket]\ncompression = false\n")
        .start();
    // Off for the whole server: offers are declined.
    let (_, status, head) = Ws::try_connect(&s.addr("websocket"), "/", &[OFFER]);
    assert_eq!(status, 101);
    assert!(!head.contains("Extensions"), "{head}");
    drop(s);

    let s = Instance::echo(1).start();
    let addr = s.addr("websocket");
    // server_max_window_bits is honoured and echoed; the compressed answer inflates.
    let (mut ws, _, head) = Ws::try_connect(
        &addr,
        "/",
        &[(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
        )],
    );
    assert!(head.contains("; server_max_window_bits=9\r\n"), "{head}");
    let msg = "abcdefghij".repeat(2000);
    ws.send_text(&msg);
    let f = ws.recv_frame().unwrap();
    assert!(f.rsv1);
    assert_eq!(inflate(&f.payload), msg.as_bytes());
    // A window of 8 bits is accepted, and messages then go uncompressed.
    let (mut ws, _, head) = Ws::try_connect(
        &addr,
        "/",
        &[(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; server_max_window_bits=8",
        )],
    );
    assert!(head.contains("; server_max_window_bits=8\r\n"), "{head}");
    send_compressed(&mut ws, 1, msg.as_bytes());
    let f = ws.recv_frame().unwrap();
    assert_eq!((f.rsv1, f.payload.len()), (false, msg.len()));
    // An invalid offer is declined (no extension), the upgrade still succeeds.
    let (_, status, head) = Ws::try_connect(
        &addr,
        "/",
        &[(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; server_max_window_bits=16",
        )],
    );
    assert_eq!(status, 101);
    assert!(!head.contains("Extensions"), "{head}");
}

#[test]
fn per_listener_override() {
    let mut s = Instance::new("echo", 1, &["websocket"]);
    let plain_port = common::free_port();
    let cfg = format!(
        "listen = [{{ url = \"websocket://127.0.0.1:{}\" }}, {{ url = \"websocket://127.0.0.1:{plain_port}\", compression = false }}]\n",
        s.port("websocket")
    );
    // The listeners come from the file: the instance passes no --listen.
    s.listeners.clear();
    let s = s.config(&cfg).start();
    assert!(common::wait_until(10 * SEC, || {
        std::net::TcpStream::connect(("127.0.0.1", plain_port)).is_ok()
    }));
    let on = cfg
        .split('"')
        .nth(1)
        .unwrap()
        .trim_start_matches("websocket://");
    deflate_client(on);
    let (_, _, head) = Ws::try_connect(&format!("127.0.0.1:{plain_port}"), "/", &[OFFER]);
    assert!(!head.contains("Extensions"), "{head}");
    drop(s);
}

#[test]
fn decompression_bomb_is_refused_with_1009_without_memory_growth() {
    let s = Instance::echo(1)
        .config("[limits]\nmax_package_size = 1048576\n")
        .start();
    // 200 MiB of zeros deflate to about 200 KiB: under the 1 MiB limit on the wire.
    let bomb = deflate(&vec![0u8; 200 << 20]);
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let before = worker_peak_kib(&s);
    for _ in 0..3 {
        let mut ws = deflate_client(&s.addr("websocket"));
        ws.send_frame(true, 0x40 | 2, &bomb);
        assert_eq!(ws.recv_close_code(), Some(1009));
    }
    // Peak resident memory, not current: any transient allocation of the inflated size shows.
    let grown = worker_peak_kib(&s).saturating_sub(before);
    assert!(grown < 16 * 1024, "worker peak RSS grew by {grown} KiB");
    // A message of exactly the limit still goes through.
    let mut ws = deflate_client(&s.addr("websocket"));
    let ok = vec![7u8; 1 << 20];
    send_compressed(&mut ws, 2, &ok);
    let f = ws.recv_frame().unwrap();
    assert!(f.rsv1);
    assert_eq!(inflate(&f.payload), ok);
    // Compressed text that inflates to invalid UTF-8: 1007.
    send_compressed(&mut ws, 1, &[b'a', 0xff, 0xfe]);
    assert_eq!(ws.recv_close_code(), Some(1007));
}

/// Read frames until a chat "say" arrives; the compressed ones are inflated.
fn recv_say(ws: &mut Ws) -> (Frame, Value) {
    loop {
        let f = ws.recv_frame().expect("frame");
        let text = if f.rsv1 {
            inflate(&f.payload)
        } else {
            f.payload.clone()
        };
        let v: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        if v["type"] == "say" {
            return (f, v);
        }
    }
}

#[test]
fn room_broadcast_to_compressing_and_plain_members() {
    let s = Instance::new("chat", 1, &["websocket"]).start();
    let addr = s.addr("websocket");
    let mut z1 = deflate_client(&addr);
    let mut z2 = deflate_client(&addr);
    let mut plain = Ws::connect(&addr, "/");
    for (ws, name) in [(&mut z1, "z1"), (&mut z2, "z2"), (&mut plain, "plain")] {
        ws.send_text(&json!({"type":"login","client_name":name,"room_id":"r"}).to_string());
    }
    // Python clients (two negotiating deflate, one not) join the same room and one speaks.
    let r = python(&["room", &addr, "r"]);
    assert!(r["deflate"]
        .as_str()
        .unwrap()
        .starts_with("permessage-deflate"));
    assert_eq!(r["plain"], Value::Null);
    let (f1, m1) = recv_say(&mut z1);
    let (f2, m2) = recv_say(&mut z2);
    let (fp, mp) = recv_say(&mut plain);
    assert!(f1.rsv1 && f2.rsv1 && !fp.rsv1);
    // One compressed frame for both compressing members (same bytes), smaller than the plain one.
    assert_eq!(f1.payload, f2.payload);
    assert!(f1.payload.len() * 4 < fp.payload.len());
    assert_eq!(m1, mp);
    assert_eq!(m2, mp);
    assert_eq!(
        mp["content"].as_str().unwrap().len() as u64,
        r["content_len"].as_u64().unwrap()
    );
}
