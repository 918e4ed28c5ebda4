//! A hostile TLS client against the real binary: a flood of records that carry no data (runs
//! of the empty records rustls tolerates, a byte of data between runs, records it writes with
//! keys taken out of its rustls session) is read a bounded slice per turn. The worker answers
//! another client meanwhile, and the flood's own lines are still echoed whole once it ends: the
//! slice left unread at each turn's end raises no new event, so a lost re-read would stall it.

mod common;

use common::pki;
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
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.enable_secret_extraction = extract;
    Arc::new(cfg)
}

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

impl Raw {
    /// Handshake with rustls, then take its keys.
    fn connect(port: u16, ca: &Path) -> Raw {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(60 * SEC)).unwrap();
        let mut c = ClientConnection::new(client_config(ca, true), "localhost".try_into().unwrap())
            .unwrap();
        while c.is_handshaking() || c.wants_write() {
            c.complete_io(&mut sock).unwrap();
        }
        let rustls::SupportedCipherSuite::Tls13(suite) = c.negotiated_cipher_suite().unwrap()
        else {
            panic!("TLS 1.3 expected");
        };
        let secrets = c.dangerous_extract_secrets().unwrap();
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

    /// One application-data record with `payload` (maybe empty), appended to `wire`.
    fn record(&mut self, payload: &[u8], wire: &mut Vec<u8>) {
        let m = OutboundPlainMessage {
            typ: ContentType::ApplicationData,
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
        while data.len() < want {
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
            let n = self.sock.read(&mut b).expect("the server's answer");
            assert!(n > 0, "closed after {} of {want} bytes", data.len());
            self.inb.extend_from_slice(&b[..n]);
        }
        data
    }
}

#[test]
fn a_flood_of_empty_records_is_read_in_slices_and_its_data_arrives_whole() {
    let k = Instance::new("echo", 1, &["text+tls"]);
    let pki = pki::make(&k.dir.join("pki"));
    let port = k.port("text+tls");
    let k = k
        .config(&format!(
            "[[listen]]\nurl = \"text+tls://127.0.0.1:{port}\"\ncert = {:?}\nkey = {:?}\n",
            pki.cert, pki.key
        ))
        .start();

    // 20 000 runs of 31 empty records and one with a byte of data (rustls refuses a 33rd
    // empty record in a row), a newline after every 100: 200 lines, about 14 MB of records.
    let mut h = Raw::connect(port, &pki.ca);
    let (runs, line) = (20_000, 100);
    let mut wire = Vec::new();
    for i in 0..runs {
        for _ in 0..31 {
            h.record(b"", &mut wire);
        }
        h.record(b"a", &mut wire);
        if i % line == line - 1 {
            h.record(b"\n", &mut wire);
        }
    }
    let mut w = h.sock.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&wire).unwrap());

    // Another client of the same worker is answered while the flood is read.
    let mut g = rustls::StreamOwned::new(
        ClientConnection::new(
            client_config(&pki.ca, false),
            "localhost".try_into().unwrap(),
        )
        .unwrap(),
        TcpStream::connect(("127.0.0.1", port)).unwrap(),
    );
    g.sock.set_read_timeout(Some(60 * SEC)).unwrap();
    for i in 0..3 {
        let msg = format!("still here {i}\n");
        g.write_all(msg.as_bytes()).unwrap();
        let mut got = vec![0u8; msg.len()];
        g.read_exact(&mut got).unwrap();
        assert_eq!(got, msg.as_bytes());
    }

    // Every line of the flood comes back, in order.
    let want = [vec![b'a'; line], b"\n".to_vec()]
        .concat()
        .repeat(runs / line);
    let got = h.read_data(want.len());
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the echoed lines differ");
    writer.join().unwrap();
}
