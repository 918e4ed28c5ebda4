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

/// A throwaway CA and a `localhost` / 127.0.0.1 certificate it signed, made by `openssl` in
/// `dir`: (CA PEM, certificate PEM, key PEM).
fn test_pki(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=load CA",
    ]);
    run(&a);
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&a);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

/// One TLS text-protocol client against an in-process rustls server echoing a line; with a
/// CA that did not sign the server's certificate the connection fails with a TLS error.
#[test]
fn text_over_tls_roundtrip_and_an_untrusted_certificate() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::env::temp_dir().join(format!("kefu-load-tls-{}", std::process::id()));
    let (ca, cert, key) = test_pki(&dir.join("good"));
    let (other_ca, _, _) = test_pki(&dir.join("other"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        // The trusted client: echo one line.
        let (s, _) = l.accept().unwrap();
        let conn = rustls::ServerConnection::new(config.clone()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, s);
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") {
            tls.read_exact(&mut b).unwrap();
            line.push(b[0]);
        }
        tls.write_all(&line).unwrap();
        tls.flush().unwrap();
        // The untrusting client: its handshake fails (it sends an alert and closes).
        let (s, _) = l.accept().unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, s);
        assert!(tls.read(&mut b).is_err() || tls.conn.is_handshaking());
    });
    let url = format!("text+tls://{addr}");
    let mut target = Target::parse(&url).unwrap();
    target.trust(Some(&ca)).unwrap();
    let mut net = Net::new(Arc::new(target), 3).unwrap();
    let id = net.connect(0).unwrap();
    let mut batch = Batch::default();
    poll_until(&mut net, &mut batch, |b| {
        b.events.iter().any(|e| matches!(e, Event::Open { .. }))
    });
    assert!(net.send(id, Kind::Text, b"over tls"));
    poll_until(&mut net, &mut batch, |b| {
        b.events.iter().any(|e| matches!(e, Event::Message { start, end, .. } if b.payload(*start, *end) == b"over tls"))
    });

    let mut target = Target::parse(&url).unwrap();
    target.trust(Some(&other_ca)).unwrap();
    let mut net = Net::new(Arc::new(target), 4).unwrap();
    net.connect(0).unwrap();
    poll_until(&mut net, &mut batch, |b| {
        b.events.iter().any(|e| {
            matches!(
                e,
                Event::Closed {
                    was_open: false,
                    reason: CloseReason::Tls(_),
                    ..
                }
            )
        })
    });
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
