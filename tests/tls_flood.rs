//! Hostile TLS clients against the real binary over wss://, on both record engines (rustls for
//! a fresh session, our record layer for one carried over by `kefu reload`): a flood of
//! records without data (runs of empty records, one byte of a WebSocket frame between runs)
//! is read a bounded slice per turn while another client is answered, and every message of
//! the flood is still echoed whole; a client that only ever sends empty records is closed
//! once the run passes 32 (rustls' bound, and ours); a post-handshake message split into
//! one-byte records neither stalls the worker nor grows without bound.

mod common;

use common::pki::{instance, Pki};
use common::{Instance, SEC};
use rustls::crypto::cipher::{
    InboundOpaqueMessage, MessageDecrypter, MessageEncrypter, OutboundChunks, OutboundPlainMessage,
};
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, ClientConnection, ConnectionTrafficSecrets, ContentType};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

/// A client trusting the test CA; `extract`: its keys may be taken out after the handshake.
fn client_config(ca: &Path, extract: bool) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.enable_secret_extraction = extract;
    Arc::new(cfg)
}

const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A masked client text frame (short payloads only).
fn frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [9u8, 8, 7, 6];
    let mut f = vec![0x81, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// The server's (unmasked) text frame for `payload`.
fn echoed(payload: &[u8]) -> Vec<u8> {
    [&[0x81, payload.len() as u8][..], payload].concat()
}

/// Read from `s` until `want` bytes came.
fn read_n(s: &mut impl Read, want: usize) -> Vec<u8> {
    let mut got = vec![0u8; want];
    s.read_exact(&mut got).expect("the server's answer");
    got
}

/// A WebSocket client through rustls: upgraded, then one echo.
fn ws_client(
    port: u16,
    ca: &Path,
    extract: bool,
) -> rustls::StreamOwned<ClientConnection, TcpStream> {
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(30 * SEC)).unwrap();
    let c =
        ClientConnection::new(client_config(ca, extract), "localhost".try_into().unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(c, sock);
    s.write_all(UPGRADE).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "the upgrade's answer");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    ws_echo(&mut s, b"hello");
    s
}

fn ws_echo(s: &mut impl ReadWrite, msg: &[u8]) {
    s.write_all(&frame(msg)).unwrap();
    assert_eq!(read_n(s, msg.len() + 2), echoed(msg), "the echo of {msg:?}");
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A TLS 1.3 connection whose records this test makes and opens itself.
struct Raw {
    sock: TcpStream,
    enc: Box<dyn MessageEncrypter>,
    tx: u64,
    dec: Box<dyn MessageDecrypter>,
    rx: u64,
    /// Ciphertext read but not yet opened.
    inb: Vec<u8>,
}

fn key_iv(
    s: ConnectionTrafficSecrets,
) -> (rustls::crypto::cipher::AeadKey, rustls::crypto::cipher::Iv) {
    match s {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
        _ => panic!("unknown suite"),
    }
}

/// Which engine the server runs the session on.
#[derive(Clone, Copy, PartialEq)]
enum Engine {
    Rustls,
    /// Our record layer: the session was carried over by a reload.
    Records,
}

/// An echo instance with a wss:// listener, started detached (so it can be reloaded).
fn start() -> (Logged, Pki) {
    let (k, pki) = instance("echo", &["wss"], "");
    assert!(k.start_detached().ok(), "{}", k.log());
    (Logged(k), pki)
}

/// An instance whose log is printed if the test fails.
struct Logged(Instance);

impl Logged {
    /// The worker that served the test is still the one that started (a panic would have
    /// replaced it, and a later client would not notice).
    fn same_worker(&self, pids: &[i32]) {
        assert_eq!(self.worker_pids(), pids, "the worker was replaced");
        assert!(!self.log().contains("panicked"), "{}", self.log());
    }
}

impl std::ops::Deref for Logged {
    type Target = Instance;
    fn deref(&self) -> &Instance {
        &self.0
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kefu's log:\n{}", self.0.log());
        }
    }
}

impl Raw {
    /// Handshake and upgrade with rustls (then a reload for `Engine::Records`, and an echo
    /// after it), then take its keys.
    fn connect(k: &Instance, ca: &Path, engine: Engine) -> Raw {
        let mut s = ws_client(k.port("wss"), ca, true);
        if engine == Engine::Records {
            let out = k.run(&["reload"], 60 * SEC);
            assert!(out.ok(), "{out:?}\n{}", k.log());
            ws_echo(&mut s, b"after the reload");
        }
        let rustls::StreamOwned { conn, sock } = s;
        let rustls::SupportedCipherSuite::Tls13(suite) = conn.negotiated_cipher_suite().unwrap()
        else {
            panic!("TLS 1.3 expected");
        };
        let secrets = conn.dangerous_extract_secrets().unwrap();
        let ((tx, txs), (rx, rxs)) = (secrets.tx, secrets.rx);
        let (tk, tiv) = key_iv(txs);
        let (rk, riv) = key_iv(rxs);
        Raw {
            sock,
            enc: suite.aead_alg.encrypter(tk, tiv),
            tx,
            dec: suite.aead_alg.decrypter(rk, riv),
            rx,
            inb: Vec::new(),
        }
    }

    /// One record of inner type `typ` with `payload` (maybe empty), appended to `wire`.
    fn record(&mut self, typ: ContentType, payload: &[u8], wire: &mut Vec<u8>) {
        let m = OutboundPlainMessage {
            typ,
            version: rustls::ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(payload),
        };
        wire.extend(self.enc.encrypt(m, self.tx).unwrap().encode());
        self.tx += 1;
    }

    /// Application data from the server until `want` bytes came (other records, such as
    /// session tickets, are opened and skipped).
    fn read_data(&mut self, want: usize) -> Vec<u8> {
        let mut data = Vec::new();
        let mut b = vec![0u8; 64 * 1024];
        loop {
            while self.inb.len() >= 5 {
                let len = u16::from_be_bytes([self.inb[3], self.inb[4]]) as usize;
                if self.inb.len() < 5 + len {
                    break;
                }
                let mut payload: Vec<u8> = self.inb[5..5 + len].to_vec();
                self.inb.drain(..5 + len);
                let m = InboundOpaqueMessage::new(
                    ContentType::ApplicationData,
                    rustls::ProtocolVersion::TLSv1_2,
                    &mut payload,
                );
                let plain = self
                    .dec
                    .decrypt(m, self.rx)
                    .expect("a record from the server");
                self.rx += 1;
                if plain.typ == ContentType::ApplicationData {
                    data.extend_from_slice(plain.payload);
                }
            }
            if data.len() >= want {
                return data;
            }
            let n = self.sock.read(&mut b).expect("the server's answer");
            assert!(n > 0, "closed after {} of {want} bytes", data.len());
            self.inb.extend_from_slice(&b[..n]);
        }
    }

    /// Send `wire` from a thread (the server may close before it is all written: errors end
    /// the thread quietly), so the test can read meanwhile.
    fn send_in_background(&self, wire: Vec<u8>) -> std::thread::JoinHandle<()> {
        let mut w = self.sock.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(&wire);
        })
    }

    /// Read until the server ends the connection (EOF or reset); how many bytes came before.
    fn until_closed(&mut self) -> usize {
        let mut b = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            match self.sock.read(&mut b) {
                Ok(0) => return total,
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return total,
                Err(e) => panic!("not closed ({total} bytes came): {e}"),
            }
        }
    }
}

/// Runs of 31 empty records (one short of the bound), each followed by a record carrying one
/// byte of a WebSocket frame: `messages` messages of 100 bytes each; the echoes all come back
/// in order, and another client is answered while the flood is read.
fn flood_then_echoes(engine: Engine) {
    let (k, pki) = start();
    let mut h = Raw::connect(&k, &pki.ca, engine);
    let pids = k.worker_pids();
    let messages = 60;
    let mut wire = Vec::new();
    let mut want = Vec::new();
    for i in 0..messages {
        let msg = format!("{i:03}{}", "a".repeat(97));
        want.extend(echoed(msg.as_bytes()));
        for byte in frame(msg.as_bytes()) {
            for _ in 0..31 {
                h.record(ContentType::ApplicationData, b"", &mut wire);
            }
            h.record(ContentType::ApplicationData, &[byte], &mut wire);
        }
    }
    let writer = h.send_in_background(wire);

    // Another client of the same (single) worker is answered while the flood is read.
    let mut g = ws_client(k.port("wss"), &pki.ca, false);
    for i in 0..3 {
        ws_echo(&mut g, format!("still here {i}").as_bytes());
    }

    let got = h.read_data(want.len());
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the echoes differ");
    writer.join().unwrap();
    ws_echo(&mut g, b"after the flood");
    k.same_worker(&pids);
}

#[test]
fn a_flood_of_empty_records_on_rustls_is_read_in_slices_and_every_echo_returns() {
    flood_then_echoes(Engine::Rustls);
}

#[test]
fn a_flood_of_empty_records_after_a_reload_is_read_in_slices_and_every_echo_returns() {
    flood_then_echoes(Engine::Records);
}

/// Nothing but empty records: the connection ends at the 33rd in a row.
fn only_empty_records_are_closed(engine: Engine) {
    let (k, pki) = start();
    let mut h = Raw::connect(&k, &pki.ca, engine);
    let pids = k.worker_pids();
    let mut wire = Vec::new();
    for _ in 0..5000 {
        h.record(ContentType::ApplicationData, b"", &mut wire);
    }
    let writer = h.send_in_background(wire);
    // At most the alert comes back: no echo, nothing else.
    let answered = h.until_closed();
    assert!(answered < 100, "{answered} bytes came back");
    writer.join().unwrap();
    let mut g = ws_client(k.port("wss"), &pki.ca, false);
    ws_echo(&mut g, b"others are served");
    k.same_worker(&pids);
}

#[test]
fn only_empty_records_on_rustls_close_the_connection() {
    only_empty_records_are_closed(Engine::Rustls);
}

#[test]
fn only_empty_records_after_a_reload_close_the_connection() {
    only_empty_records_are_closed(Engine::Records);
}

/// A post-handshake handshake message (declared 64 KiB long) sent one byte per record: the
/// records are joined a bounded slice per turn (another client is answered meanwhile) and the
/// connection is closed once what it holds passes the bound on one message.
#[test]
fn a_handshake_message_in_one_byte_records_is_bounded_and_closed() {
    let (k, pki) = start();
    let mut h = Raw::connect(&k, &pki.ca, Engine::Rustls);
    let pids = k.worker_pids();
    let mut wire = Vec::new();
    // A key_update header declaring 0xffff bytes, then the body a byte at a time: 5000
    // records (about 115 KB of ciphertext, more than the session holds for one message).
    for byte in [24u8, 0, 0xff, 0xff].into_iter().chain([0u8; 4996]) {
        h.record(ContentType::Handshake, &[byte], &mut wire);
    }
    let writer = h.send_in_background(wire);
    let mut g = ws_client(k.port("wss"), &pki.ca, false);
    ws_echo(&mut g, b"answered during the fragments");
    let answered = h.until_closed();
    assert!(answered < 100, "{answered} bytes came back");
    writer.join().unwrap();
    ws_echo(&mut g, b"answered after them");
    k.same_worker(&pids);
}

/// Half a handshake message, then a record of another type (RFC 8446 sec. 5.1 forbids it):
/// the session ends with an error, and the worker, which hands rustls what is left of its
/// input to fetch the alert, goes on serving others.
#[test]
fn a_record_inside_a_split_handshake_message_ends_only_its_session() {
    let (k, pki) = start();
    let mut h = Raw::connect(&k, &pki.ca, Engine::Rustls);
    let pids = k.worker_pids();
    let mut wire = Vec::new();
    for _ in 0..3 {
        h.record(ContentType::Handshake, &[24], &mut wire);
    }
    h.record(ContentType::ApplicationData, b"", &mut wire);
    h.sock.write_all(&wire).unwrap();
    let answered = h.until_closed();
    assert!(answered < 100, "{answered} bytes came back");
    let mut g = ws_client(k.port("wss"), &pki.ca, false);
    ws_echo(&mut g, b"others are served");
    k.same_worker(&pids);
}

/// Empty records, then a run of empty handshake records, then data: rustls' unbuffered API
/// once panicked on this sequence (slicing past the input it was handed; found by the
/// `tls_session` fuzz target). Whatever rustls does with it, only this session may end: the
/// worker keeps running and serves others.
#[test]
fn input_that_panics_rustls_ends_only_its_session() {
    let (k, pki) = start();
    let pids = k.worker_pids();
    for round in 0..3 {
        let mut h = Raw::connect(&k, &pki.ca, Engine::Rustls);
        let mut wire = Vec::new();
        for _ in 0..3 {
            h.record(ContentType::ApplicationData, b"", &mut wire);
        }
        for _ in 0..19 {
            h.record(ContentType::Handshake, b"", &mut wire);
        }
        h.record(ContentType::ApplicationData, &[0; 2040], &mut wire);
        h.sock.write_all(&wire).unwrap();
        let answered = h.until_closed();
        assert!(
            answered < 100_000,
            "round {round}: {answered} bytes came back"
        );
        let mut g = ws_client(k.port("wss"), &pki.ca, false);
        ws_echo(&mut g, b"others are served");
        // rustls' panic message may be in the log (caught, it ended the session only); the
        // worker is the same.
        assert_eq!(
            k.worker_pids(),
            pids,
            "the worker was replaced: {}",
            k.log()
        );
    }
}
