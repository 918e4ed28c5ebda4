//! Fuzz a TLS session's read loop (`kefu::tls::session`, rustls' unbuffered API in the
//! worker's shape) after a real TLS 1.3 handshake with a rustls client in memory. The input
//! is a script: records the client makes with its own keys (any inner content type and
//! payload: empty records, alerts, handshake fragments and key updates rustls would never
//! send), deliveries of the records made so far in chunks of chosen sizes, each followed by
//! reads as the worker makes them, and writes between reads (an echo's flush). Every read
//! returns (data, a spent budget, or an error), takes at most its bound of ciphertext, and
//! never panics or spins (libFuzzer's timeout catches a read that never returns); a session
//! that does not fail drains the socket with a bounded number of reads.
//!
//! Setup (once): a throwaway P-256 certificate made with the `openssl` command.
#![no_main]

use kefu::config::TlsFiles;
use kefu::tls::session::{Got, Scratch, TlsSession};
use kefu::tls::Acceptor;
use libfuzzer_sys::fuzz_target;
use rustls::crypto::cipher::{MessageEncrypter, OutboundChunks, OutboundPlainMessage};
use rustls::{ClientConfig, ClientConnection, ConnectionTrafficSecrets, ContentType};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The caller's buffer (the worker's is 64 KiB; smaller makes the bounds bite sooner).
const BUF: usize = 16 * 1024;

/// Ciphertext one read may take: 1.5x the buffer, plus one read of the TLS scratch (about
/// two records) that crosses it.
const BOUND: usize = BUF * 3 / 2 + 40 * 1024;

struct Setup {
    acceptor: Acceptor,
    client: Arc<ClientConfig>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl {args:?}");
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        // libFuzzer's hook aborts on any panic, even one kefu catches: rustls panics on some
        // inputs and kefu's `tls::steps::guarded` ends only that session, which is the
        // behaviour under test. A panic that escapes still aborts (libfuzzer-sys catches it
        // at the target's edge).
        std::panic::set_hook(Box::new(|_| {}));
        let dir = std::env::temp_dir().join(format!("kefu-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ec = "ec_paramgen_curve:P-256";
        // A CA and a leaf it signed (webpki refuses a CA certificate as the server's).
        #[rustfmt::skip]
        openssl(&dir, &[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", ec, "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=fuzz ca",
        ]);
        #[rustfmt::skip]
        openssl(&dir, &[
            "req", "-newkey", "ec", "-pkeyopt", ec, "-nodes", "-keyout", "k.pem", "-out",
            "c.csr", "-subj", "/CN=localhost",
        ]);
        std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost\n").unwrap();
        #[rustfmt::skip]
        openssl(&dir, &[
            "x509", "-req", "-in", "c.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "c.pem", "-days", "2", "-extfile", "ext",
        ]);
        let files = TlsFiles {
            cert: dir.join("c.pem"),
            key: dir.join("k.pem"),
            sni: Vec::new(),
        };
        let acceptor = Acceptor::load(&files, true).expect("the test certificate");
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        cfg.enable_secret_extraction = true;
        Setup {
            acceptor,
            client: Arc::new(cfg),
        }
    })
}

/// The socket: what the client sent (read `room` bytes at a time) and what the server wrote.
#[derive(Default)]
struct Pipe {
    input: Vec<u8>,
    at: usize,
    output: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        if self.at == self.input.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = b.len().min(self.input.len() - self.at);
        b[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

/// A session and a client through the handshake and the session tickets; the client's
/// sending keys and sequence number.
fn established(
    s: &Setup,
    pipe: &mut Pipe,
    buf: &mut [u8],
    scratch: &mut Scratch,
) -> (TlsSession, Box<dyn MessageEncrypter>, u64) {
    let mut session = s.acceptor.session().unwrap();
    let mut c = ClientConnection::new(s.client.clone(), "localhost".try_into().unwrap()).unwrap();
    for _ in 0..10 {
        while c.wants_write() {
            c.write_tls(&mut pipe.input).unwrap();
        }
        let _ = session.read(pipe, buf, scratch, PEER);
        session.push(pipe).unwrap();
        let out = std::mem::take(&mut pipe.output);
        let mut r = &out[..];
        while !r.is_empty() {
            c.read_tls(&mut r).unwrap();
            c.process_new_packets().unwrap();
        }
        if !c.is_handshaking() && !session.handshaking() && !c.wants_write() {
            break;
        }
    }
    assert!(!c.is_handshaking() && !session.handshaking());
    assert!(session.take_established());
    // The tickets rustls sends after the handshake reach the client before its keys go.
    let mut w = session.writer(pipe, scratch);
    w.write_all(b"x").unwrap();
    drop(w);
    let out = std::mem::take(&mut pipe.output);
    let mut r = &out[..];
    while !r.is_empty() {
        c.read_tls(&mut r).unwrap();
        c.process_new_packets().unwrap();
    }
    let rustls::SupportedCipherSuite::Tls13(suite) = c.negotiated_cipher_suite().unwrap() else {
        unreachable!("TLS 1.3 only");
    };
    let (seq, secrets) = c.dangerous_extract_secrets().unwrap().tx;
    let (key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
        _ => unreachable!("a TLS 1.3 suite"),
    };
    (session, suite.aead_alg.encrypter(key, iv), seq)
}

/// Reads as the worker makes them, until the socket is drained, the session ends, or
/// `max` reads; whether the session is still usable.
fn read_turns(
    session: &mut TlsSession,
    pipe: &mut Pipe,
    buf: &mut [u8],
    scratch: &mut Scratch,
    max: usize,
) -> bool {
    for _ in 0..max {
        let before = pipe.at;
        let got = session.read(pipe, buf, scratch, PEER);
        assert!(
            pipe.at - before <= BOUND,
            "one read took {}",
            pipe.at - before
        );
        match got {
            Ok(Got::Spent(_)) => {}
            Ok(Got::Bytes(n)) if n == buf.len() => {}
            Ok(Got::Bytes(0)) => return false,
            Ok(Got::Bytes(_)) => return true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let mut pipe = Pipe::default();
    let mut buf = vec![0u8; BUF];
    let mut scratch = Scratch::new();
    let (mut session, mut enc, mut seq) = established(s, &mut pipe, &mut buf, &mut scratch);
    pipe.input.clear();
    pipe.at = 0;
    let mut wire = Vec::new();
    let mut records = 0usize;
    let mut ops = data.iter().copied();
    let kinds = [
        ContentType::ApplicationData,
        ContentType::Handshake,
        ContentType::Alert,
        ContentType::ChangeCipherSpec,
    ];
    while let Some(op) = ops.next() {
        match op % 4 {
            // A record: inner type, then a length byte and the payload (or, with the high
            // bit, that many copies of the next byte; 0 = empty).
            0 | 1 => {
                let typ = kinds[usize::from(op >> 2) & 3];
                let len = usize::from(ops.next().unwrap_or(0));
                let payload: Vec<u8> = if op & 0x80 != 0 {
                    vec![ops.next().unwrap_or(0); len * 8]
                } else {
                    ops.by_ref().take(len).collect()
                };
                // Runs: the same record up to 64 times.
                let times = usize::from((op >> 4) & 7) * 9 + 1;
                for _ in 0..times {
                    let m = OutboundPlainMessage {
                        typ,
                        version: rustls::ProtocolVersion::TLSv1_2,
                        payload: OutboundChunks::Single(&payload),
                    };
                    wire.extend(enc.encrypt(m, seq).unwrap().encode());
                    seq += 1;
                    records += 1;
                }
            }
            // Deliver up to (n + 1) * 97 bytes of what was made, then read.
            2 => {
                let n = (usize::from(ops.next().unwrap_or(255)) + 1) * 97;
                let n = n.min(wire.len());
                pipe.input.extend(wire.drain(..n));
                if !read_turns(&mut session, &mut pipe, &mut buf, &mut scratch, 4) {
                    return;
                }
            }
            // A write (an echo's flush) between reads.
            _ => {
                let mut w = session.writer(&mut pipe, &mut scratch);
                let _ = w.write_all(b"echo");
                drop(w);
                pipe.output.clear();
            }
        }
    }
    // Everything delivered: the session fails, ends, or drains it in a bounded number of
    // reads (at most one per 32 records without data, plus the ciphertext bound's).
    pipe.input.append(&mut wire);
    let max = records / 32 + pipe.input.len() / (BUF * 3 / 2) + 8;
    let mut left = max;
    while left > 0 && pipe.at < pipe.input.len() {
        if !read_turns(&mut session, &mut pipe, &mut buf, &mut scratch, 1) {
            return;
        }
        left -= 1;
    }
    assert!(
        pipe.at == pipe.input.len()
            || !read_turns(&mut session, &mut pipe, &mut buf, &mut scratch, 1),
        "{} of {} bytes read after {max} reads ({records} records)",
        pipe.at,
        pipe.input.len()
    );
});
