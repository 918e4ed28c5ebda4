//! TLS connections survive `kefu reload` (issue 14): at the hand-over the retiring worker
//! takes every established session's keys out of rustls, and its successor carries the
//! session on with our own record layer (`src/tls/record.rs`); a later reload passes the keys
//! on again. Real binary, real clients: Python `websockets` over `wss://` (TLS 1.3, and
//! TLS 1.2 with AES-GCM and with ChaCha20-Poly1305), Python `ssl` over `text+tls://`, and a
//! rustls client for what our layer cannot follow (a TLS 1.3 KeyUpdate after a reload: the
//! documented 1012). A connection still in its TLS handshake is closed by the reload.

mod common;

use common::pki::instance;
use common::{wait_until, Instance, SEC};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

fn reload(k: &Instance) {
    let out = k.run(&["reload"], 60 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
}

/// Python helpers shared by the clients: `note(name, text)` writes a file of the test's
/// directory at once (the test polls it), `stopped()` says the test asked the client to end.
const NOTES: &str = r#"
import os, sys
D = sys.argv[3]
def note(name, text):
    with open(os.path.join(D, name + ".tmp"), "w") as f:
        f.write(text)
    os.replace(os.path.join(D, name + ".tmp"), os.path.join(D, name))
def stopped():
    return os.path.exists(os.path.join(D, "stop"))
"#;

/// Echo over wss:// until told to stop, four messages in flight at a time (one over a record
/// long): every echo must come back once, in order, the connection never closing. Prints the
/// count and the close code of its own orderly close.
const WSS_LOOP: &str = r#"
import asyncio, ssl, websockets
url, ca, _, tls12 = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
if tls12 != "-":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(tls12)
async def main():
    async with websockets.connect(url, ssl=ctx, max_size=None) as ws:
        t = ws.transport.get_extra_info("ssl_object")
        note("cipher", f"{t.version()} {t.cipher()[0]}")
        i = 0
        while not stopped():
            batch = [f"m{i + j} " + "x" * (20000 if j == 0 else 10) for j in range(4)]
            for m in batch:
                await ws.send(m)
            for m in batch:
                got = await asyncio.wait_for(ws.recv(), 30)
                assert got == m, (got[:30], m[:30])
            i += len(batch)
            note("count", str(i))
            await asyncio.sleep(0.005)
        await ws.close()
        print(i, ws.close_code)
asyncio.run(main())
"#;

/// The same over text+tls:// with Python's `ssl` socket, lines instead of messages.
const TEXT_LOOP: &str = r#"
import socket, ssl
port, ca = sys.argv[1:3]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))), server_hostname="localhost")
s.settimeout(30)
f = s.makefile("rb")
note("cipher", f"{s.version()} {s.cipher()[0]}")
i = 0
while not stopped():
    lines = [f"line {i + j} ".encode() + b"y" * (20000 if j == 0 else 5) for j in range(4)]
    s.sendall(b"".join(l + b"\n" for l in lines))
    for l in lines:
        got = f.readline()
        assert got == l + b"\n", (got[:30], l[:30])
    i += len(lines)
    note("count", str(i))
print(i, "open")
"#;

/// Start `script` (after [`NOTES`]) with `args`; its notes go to `dir`, which is the third
/// argument.
fn client(script: &str, dir: &Path, args: [&str; 2], extra: &str) -> Child {
    std::fs::create_dir_all(dir).unwrap();
    Command::new("python3")
        .arg("-c")
        .arg(format!("{NOTES}{script}"))
        .args([args[0], args[1], dir.to_str().unwrap(), extra])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3")
}

fn count(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("count"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Three reloads while `child` echoes through a TLS listener of `k`: each replaces the worker,
/// the echoes go on after each; then the client stops itself and prints its count and how it
/// ended, returned with the cipher it negotiated.
fn through_three_reloads(k: &Instance, mut child: Child, dir: &Path) -> (String, String) {
    let alive = |child: &mut Child| child.try_wait().unwrap().is_none();
    assert!(
        wait_until(30 * SEC, || count(dir) >= 20 || !alive(&mut child)),
        "no echoes\n{}",
        k.log()
    );
    let mut pids = k.worker_pids();
    for round in 1..=3 {
        let before = count(dir);
        reload(k);
        let now = k.worker_pids();
        assert_ne!(now, pids, "reload {round} kept the worker");
        pids = now;
        assert!(
            wait_until(30 * SEC, || count(dir) >= before + 20 || !alive(&mut child)),
            "echoes stopped after reload {round}\n{}",
            k.log()
        );
    }
    std::fs::write(dir.join("stop"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(
        out.status.success(),
        "client failed:\n{so}\n{se}\n{}",
        k.log()
    );
    let log = k.log();
    assert_eq!(
        log.matches("handed 1 connections").count(),
        3,
        "each reload hands the client over\n{log}"
    );
    assert!(!log.contains("with 1012"), "{log}");
    let cipher = std::fs::read_to_string(dir.join("cipher")).unwrap();
    (so.trim().to_string(), cipher)
}

fn wss_through_reloads(tls12: &str) -> String {
    let (k, pki) = instance("echo", &["wss"], "");
    assert!(k.start_detached().ok(), "{}", k.log());
    let dir = k.dir.join(format!("client-{}", tls12.len()));
    let url = format!("wss://localhost:{}/", k.port("wss"));
    let child = client(WSS_LOOP, &dir, [&url, pki.ca.to_str().unwrap()], tls12);
    let (out, cipher) = through_three_reloads(&k, child, &dir);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words.len(), 2, "{out}");
    assert!(words[0].parse::<u64>().unwrap() >= 80, "{out}");
    assert_eq!(
        words[1], "1000",
        "the client's own close, nothing before it"
    );
    cipher
}

#[test]
fn wss_over_tls13_echoes_through_three_reloads() {
    let cipher = wss_through_reloads("-");
    assert!(cipher.starts_with("TLSv1.3 "), "{cipher}");
}

#[test]
fn wss_over_tls12_aes_gcm_echoes_through_three_reloads() {
    let cipher = wss_through_reloads("ECDHE-ECDSA-AES128-GCM-SHA256");
    assert_eq!(cipher, "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256");
}

#[test]
fn wss_over_tls12_chacha20_echoes_through_three_reloads() {
    let cipher = wss_through_reloads("ECDHE-ECDSA-CHACHA20-POLY1305");
    assert_eq!(cipher, "TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305");
}

#[test]
fn text_over_tls_echoes_through_three_reloads() {
    let (k, pki) = instance("echo", &["text+tls"], "");
    assert!(k.start_detached().ok(), "{}", k.log());
    let dir = k.dir.join("client");
    let port = k.port("text+tls").to_string();
    let child = client(TEXT_LOOP, &dir, [&port, pki.ca.to_str().unwrap()], "-");
    let (out, cipher) = through_three_reloads(&k, child, &dir);
    assert!(out.ends_with(" open"), "{out}");
    assert!(cipher.starts_with("TLSv1.3 "), "{cipher}");
}

/// A rustls client (TLS 1.3 only) trusting the test CA.
fn rustls_client(port: u16, ca: &Path) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap()).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(20 * SEC)).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A masked client frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [9u8, 8, 7, 6];
    let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// The next server frame (short ones only): opcode and payload; `None` at the end of the
/// stream.
fn read_frame(s: &mut Tls) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    assert!(h[1] < 126, "a short frame");
    let mut p = vec![0u8; usize::from(h[1])];
    s.read_exact(&mut p).ok()?;
    Some((h[0] & 0x0f, p))
}

fn ws_echo(s: &mut Tls, msg: &str) {
    s.write_all(&frame(1, msg.as_bytes())).unwrap();
    assert_eq!(
        read_frame(s),
        Some((1, msg.as_bytes().to_vec())),
        "echo of {msg}"
    );
}

#[test]
fn a_key_update_after_a_reload_gets_1012_and_one_before_is_followed() {
    let (k, pki) = instance("echo", &["wss"], "");
    assert!(k.start_detached().ok(), "{}", k.log());
    let mut s = rustls_client(k.port("wss"), &pki.ca);
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1);
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    ws_echo(&mut s, "before");
    // While rustls runs the session, a KeyUpdate is followed (rustls answers it) and the
    // session still moves with the new keys.
    s.conn.refresh_traffic_keys().unwrap();
    ws_echo(&mut s, "after a key update on rustls");
    reload(&k);
    ws_echo(&mut s, "after the first reload");
    reload(&k);
    ws_echo(&mut s, "after the second reload");
    // On our record layer: a message, then a KeyUpdate. The message is answered, then the
    // connection closes with 1012 (the client reconnects as after a restart).
    s.write_all(&frame(1, b"last")).unwrap();
    s.conn.refresh_traffic_keys().unwrap();
    s.write_all(&frame(1, b"unreadable")).unwrap();
    assert_eq!(read_frame(&mut s), Some((1, b"last".to_vec())));
    let close = read_frame(&mut s).expect("a close frame");
    assert_eq!(close.0, 8);
    assert_eq!(close.1[..2], 1012u16.to_be_bytes(), "{close:?}");
    let log = k.log();
    assert!(
        log.contains("sent a TLS KeyUpdate after its connection was handed over"),
        "{log}"
    );
    // A new connection is served as usual.
    let mut again = rustls_client(k.port("wss"), &pki.ca);
    again
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    let mut got = [0u8; 12];
    again.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"HTTP/1.1 101");
}

#[test]
fn a_connection_in_its_tls_handshake_is_closed_by_a_reload_and_others_move() {
    let (k, pki) = instance("echo", &["text+tls"], "");
    assert!(k.start_detached().ok(), "{}", k.log());
    let port = k.port("text+tls");
    let mut moved = rustls_client(port, &pki.ca);
    moved.write_all(b"hello\n").unwrap();
    let mut got = [0u8; 6];
    moved.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello\n");
    // The first bytes of a ClientHello record, the rest never sent.
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.set_read_timeout(Some(20 * SEC)).unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x00]).unwrap();
    // Wait until the worker holds it (a connection of its own in `kefu connections`).
    let me = half.local_addr().unwrap().port().to_string();
    assert!(
        wait_until(10 * SEC, || k
            .run(&["connections", "--json"], 10 * SEC)
            .stdout
            .contains(&format!(":{me}\""))),
        "the worker never listed the half handshake"
    );
    reload(&k);
    let mut rest = Vec::new();
    let end = half.read_to_end(&mut rest);
    assert!(
        matches!(end, Ok(0)) || end.is_err(),
        "closed without an answer: {end:?} {rest:?}"
    );
    assert!(rest.is_empty(), "{rest:?}");
    moved.write_all(b"still here\n").unwrap();
    let mut got = [0u8; 11];
    moved.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"still here\n");
}
