//! The echo app on the real binary: WebSocket and text clients over real sockets.

mod common;

use common::ws::Ws;
use common::Instance;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn websocket_echo_text_binary_fragmented_ping_close() {
    let s = Instance::new("echo", 1, &["websocket"]).start();
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    ws.send_text("hello 客服");
    assert_eq!(ws.recv_text().unwrap(), "hello 客服");

    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ws.send_frame(true, 2, &big);
    let f = ws.recv_frame().unwrap();
    assert_eq!((f.opcode, f.payload.len()), (2, big.len()));
    assert_eq!(f.payload, big);

    // Fragmented text with a ping in between: the pong comes first, then the whole message.
    ws.send_frame(false, 1, b"frag");
    ws.send_frame(true, 9, b"p!");
    ws.send_frame(false, 0, b"men");
    ws.send_frame(true, 0, b"ted");
    let pong = ws.recv_frame().unwrap();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (10, &b"p!"[..]));
    assert_eq!(ws.recv_text().unwrap(), "fragmented");

    // Close handshake: the server echoes the code and hangs up.
    ws.send_frame(true, 8, &[0x0f, 0xa0, b'b', b'y', b'e']); // 4000
    assert_eq!(ws.recv_close_code(), Some(4000));
    assert!(ws.recv_frame().is_none());
}

#[test]
fn websocket_protocol_errors_get_close_codes() {
    let s = Instance::new("echo", 1, &["websocket"]).start();
    // Invalid UTF-8 in a text message: 1007.
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    ws.send_frame(true, 1, &[b'a', 0xff, b'b']);
    assert_eq!(ws.recv_close_code(), Some(1007));
    // Reserved opcode: 1002.
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    ws.send_frame(true, 3, b"x");
    assert_eq!(ws.recv_close_code(), Some(1002));
    // Unmasked client frame: 1002.
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    ws.sock.write_all(&[0x81, 0x01, b'x']).unwrap();
    assert_eq!(ws.recv_close_code(), Some(1002));
    // The server keeps serving others.
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    ws.send_text("still here");
    assert_eq!(ws.recv_text().unwrap(), "still here");
}

#[test]
fn oversized_message_gets_1009_before_it_is_sent() {
    let s = Instance::new("echo", 1, &["websocket"])
        .config("[limits]\nmax_package_size = 1024\n")
        .start();
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    ws.send_text(&"a".repeat(1000));
    assert_eq!(ws.recv_text().unwrap().len(), 1000);
    // Only the header of a 1 MiB frame: the server must refuse on the declared length.
    ws.sock
        .write_all(&[0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4])
        .unwrap();
    assert_eq!(ws.recv_close_code(), Some(1009));
}

#[test]
fn bad_handshakes_get_http_errors() {
    let s = Instance::new("echo", 1, &["websocket"]).start();
    // An unsupported version: 426 naming the one we speak (RFC 6455 §4.4).
    let mut c = TcpStream::connect(s.addr("websocket")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
        .unwrap();
    let mut head = String::new();
    let _ = c.read_to_string(&mut head);
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(head.contains("Sec-WebSocket-Version: 13"), "{head}");

    let mut c = TcpStream::connect(s.addr("websocket")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&c).read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 400"), "{line}");

    // A header block past the bound is refused, not buffered forever.
    let mut c = TcpStream::connect(s.addr("websocket")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(b"GET / HTTP/1.1\r\n");
    let junk = format!("X-Junk: {}\r\n", "j".repeat(1000));
    for _ in 0..40 {
        if c.write_all(junk.as_bytes()).is_err() {
            break;
        }
    }
    let mut line = String::new();
    let _ = BufReader::new(&c).read_line(&mut line);
    assert!(line.starts_with("HTTP/1.1 431"), "{line}");
}

#[test]
fn text_protocol_echo_any_split() {
    let s = Instance::new("echo", 1, &["text"]).start();
    let c = TcpStream::connect(s.addr("text")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    // Many lines in one write, CRLF stripped.
    w.write_all(b"one\r\ntwo\nthree\n").unwrap();
    // One line dripped byte by byte.
    for b in b"dripped\n" {
        w.write_all(&[*b]).unwrap();
        w.flush().unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        got.push(l);
    }
    assert_eq!(got, ["one\n", "two\n", "three\n", "dripped\n"]);
}
