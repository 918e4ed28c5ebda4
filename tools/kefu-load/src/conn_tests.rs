//! Loop-level tests against tiny in-process servers.

use super::*;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;

fn poll_until(net: &mut Net, batch: &mut Batch, mut done: impl FnMut(&Batch) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        batch.clear();
        net.poll(Some(Duration::from_millis(10)), batch).unwrap();
        if done(batch) {
            return;
        }
    }
    panic!("timed out");
}

#[test]
fn text_protocol_roundtrip_from_bound_source() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("text://{}", l.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (s, peer) = l.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        w.write_all(line.as_bytes()).unwrap();
        peer
    });
    let mut net = Net::new(Arc::new(Target::parse(&url).unwrap()), 1).unwrap();
    let id = net.connect(4).unwrap();
    let mut batch = Batch::default();
    poll_until(&mut net, &mut batch, |b| {
        b.events.iter().any(|e| matches!(e, Event::Open { .. }))
    });
    assert!(net.send(id, Kind::Text, b"hello"));
    poll_until(&mut net, &mut batch, |b| {
        b.events.iter().any(|e| matches!(e, Event::Message { start, end, .. } if b.payload(*start, *end) == b"hello"))
    });
    // Index 4 maps to source address 127.0.0.5.
    assert_eq!(server.join().unwrap().ip().to_string(), "127.0.0.5");
}

#[test]
fn websocket_ping_fragments_and_masking() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/x", l.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("GET /x HTTP/1.1\r\n"));
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            ws::accept_for(key)
        );
        s.write_all(resp.as_bytes()).unwrap();
        // Ping, then "abcd" in two fragments, all in one write.
        s.write_all(b"\x89\x02hi\x01\x02ab\x80\x02cd").unwrap();
        // Expect a masked pong carrying "hi", then a masked text "ok".
        let mut frame = [0u8; 8];
        s.read_exact(&mut frame).unwrap();
        assert_eq!(frame[0], 0x8A);
        assert_eq!(frame[1], 0x82);
        let mut p = [frame[6], frame[7]];
        ws::apply_mask(&mut p, [frame[2], frame[3], frame[4], frame[5]]);
        assert_eq!(&p, b"hi");
        s.read_exact(&mut frame).unwrap();
        assert_eq!(frame[0], 0x81);
        let mut p = [frame[6], frame[7]];
        ws::apply_mask(&mut p, [frame[2], frame[3], frame[4], frame[5]]);
        assert_eq!(&p, b"ok");
    });
    let mut net = Net::new(Arc::new(Target::parse(&url).unwrap()), 2).unwrap();
    let id = net.connect(0).unwrap();
    let mut batch = Batch::default();
    let mut opened = false;
    poll_until(&mut net, &mut batch, |b| {
        opened |= b.events.iter().any(|e| matches!(e, Event::Open { .. }));
        b.events.iter().any(|e| matches!(e, Event::Message { start, end, kind: Kind::Text, .. } if b.payload(*start, *end) == b"abcd"))
    });
    assert!(opened);
    assert!(net.send(id, Kind::Text, b"ok"));
    net.flush();
    server.join().unwrap();
}
