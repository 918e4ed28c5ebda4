//! The session against a rustls client over an in-memory, non-blocking pipe: handshake,
//! both directions, records arriving a byte short, a caller's buffer smaller than a record,
//! what is counted while idle and while a record is partial, close_notify and garbage, and
//! hostile streams of records without data (the work per read stays bounded, on both engines).

use super::*;
use crate::config::TlsFiles;
use crate::tls::carry::TlsCarry;
use crate::tls::Acceptor;
use std::collections::VecDeque;

/// The server's socket: bytes the client sent (reads say `WouldBlock` when none are left)
/// and bytes the server wrote (at most `room` of them, if set: a peer that does not read).
#[derive(Default)]
struct Pipe {
    input: VecDeque<u8>,
    output: Vec<u8>,
    room: Option<usize>,
}

impl Read for Pipe {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = b.len().min(self.input.len());
        for (d, s) in b.iter_mut().zip(self.input.drain(..n)) {
            *d = s;
        }
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = match self.room {
            Some(r) => b.len().min(r - r.min(self.output.len())),
            None => b.len(),
        };
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.output.extend_from_slice(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Side {
    s: TlsSession,
    c: rustls::ClientConnection,
    p: Pipe,
    buf: Vec<u8>,
    scratch: Scratch,
}

const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

fn openssl(dir: &std::path::Path, args: &[&str]) {
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
}

/// A server session and a client trusting its throwaway CA, handshake not started.
fn pair(tag: &str) -> Side {
    pair_with(tag, None)
}

/// [`pair`] with a client that offers only `suite` (and so only its protocol version).
fn pair_with(tag: &str, suite: Option<rustls::SupportedCipherSuite>) -> Side {
    let dir = std::env::temp_dir().join(format!("kefu-session-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ec = "ec_paramgen_curve:P-256";
    openssl(
        &dir,
        &[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", ec, "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "1", "-subj", "/CN=t",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            ec,
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "c.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "c.pem",
            "-days",
            "1",
            "-extfile",
            "ext",
        ],
    );
    let files = TlsFiles {
        cert: dir.join("c.pem"),
        key: dir.join("k.pem"),
        sni: Vec::new(),
    };
    let acceptor = Acceptor::load(&files, true).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut provider = rustls::crypto::ring::default_provider();
    let mut versions = vec![&rustls::version::TLS13, &rustls::version::TLS12];
    if let Some(suite) = suite {
        provider.cipher_suites = vec![suite];
        versions = vec![suite.version()];
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // A hostile client writes records of its own making (`Forger`).
    cfg.enable_secret_extraction = true;
    let _ = std::fs::remove_dir_all(&dir);
    Side {
        s: acceptor.session().unwrap(),
        c: rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap()).unwrap(),
        p: Pipe::default(),
        buf: vec![0; 64 * 1024],
        scratch: Scratch::new(),
    }
}

impl Side {
    /// The client's pending records, as bytes (not yet given to the server).
    fn client_bytes(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        while self.c.wants_write() {
            self.c.write_tls(&mut v).unwrap();
        }
        v
    }

    /// What the server wrote, into the client; the plaintext it yields.
    fn deliver(&mut self) -> Vec<u8> {
        let out = std::mem::take(&mut self.p.output);
        let mut r = &out[..];
        let mut plain = Vec::new();
        while !r.is_empty() {
            self.c.read_tls(&mut r).unwrap();
            self.c.process_new_packets().unwrap();
            plain.extend(self.client_plain());
        }
        plain
    }

    fn read(&mut self) -> io::Result<usize> {
        let buf = &mut self.buf[..];
        read_small(&mut self.s, &mut self.p, buf, &mut self.scratch)
    }

    fn handshake(&mut self) {
        for _ in 0..10 {
            let v = self.client_bytes();
            self.p.input.extend(v);
            let _ = self.read();
            assert!(self.s.push(&mut self.p).unwrap());
            assert!(self.deliver().is_empty());
            if !self.c.is_handshaking() && !self.s.handshaking() {
                assert!(self.s.take_established());
                return;
            }
        }
        panic!("no handshake");
    }

    /// Everything the client can read now.
    fn client_plain(&mut self) -> Vec<u8> {
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        loop {
            match self.c.reader().read(&mut b) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return got,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

#[test]
fn both_directions_partial_records_counted_and_nothing_held_when_idle() {
    let mut x = pair("a");
    x.handshake();
    // The handshake's reserve is given back; an idle session holds no buffer.
    x.s.recount();
    assert_eq!(x.s.recount(), (0, 0));
    assert!(!x.s.wants_write());

    // A 10 000-byte message arrives a byte short: nothing to hand on, the partial record is
    // counted; the last byte completes it.
    let msg: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    x.c.writer().write_all(&msg).unwrap();
    let wire = x.client_bytes();
    x.p.input.extend(&wire[..wire.len() - 1]);
    assert_eq!(x.read().unwrap_err().kind(), io::ErrorKind::WouldBlock);
    let (_, held) = x.s.recount();
    assert!(
        held >= wire.len() - 1,
        "{held} counted for {} bytes",
        wire.len() - 1
    );
    x.p.input.extend(&wire[wire.len() - 1..]);
    let n = x.read().unwrap();
    assert_eq!(&x.buf[..n], &msg[..]);
    assert_eq!(x.s.recount().1, 0);

    // Server to client: 100 000 bytes through the writer, in records of at most 16 KiB.
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    x.s.writer(&mut x.p, &mut x.scratch)
        .write_all(&big)
        .unwrap();
    assert!(x.s.push(&mut x.p).unwrap());
    assert_eq!(x.deliver(), big);
    assert!(!x.s.wants_write());

    // A caller's buffer smaller than a record: the rest waits in the session, in order.
    x.c.writer().write_all(&msg).unwrap();
    let wire = x.client_bytes();
    x.p.input.extend(wire);
    let mut got = Vec::new();
    let mut small = vec![0u8; 1000];
    while got.len() < msg.len() {
        let n = read_small(&mut x.s, &mut x.p, &mut small, &mut x.scratch).unwrap();
        got.extend_from_slice(&small[..n]);
    }
    assert_eq!(got, msg);

    // close_notify from the client ends the stream.
    x.c.send_close_notify();
    let wire = x.client_bytes();
    x.p.input.extend(wire);
    assert_eq!(x.read().unwrap(), 0);
}

#[test]
fn garbage_gets_an_alert_and_an_error() {
    let mut x = pair("b");
    x.p.input.extend(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(x.read().unwrap_err().kind(), io::ErrorKind::InvalidData);
    assert_eq!(x.p.output.first(), Some(&0x15), "{:?}", x.p.output);
    // Failed for good: later reads say so at once.
    assert_eq!(x.read().unwrap_err().kind(), io::ErrorKind::InvalidData);
}

/// The server's session moves to our record layer mid-stream, through the hand-over record's
/// serde form, with a client's record half read, one whole record not yet decrypted and
/// server output not yet written: the rustls client notices nothing, for every suite of both
/// versions; close_notify ends the stream; a KeyUpdate is reported, not misread.
#[test]
fn a_session_carries_on_on_our_record_layer_for_every_suite() {
    use rustls::crypto::ring::cipher_suite::*;
    let suites = [
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    for (i, suite) in suites.into_iter().enumerate() {
        let mut x = pair_with(&format!("s{i}"), Some(suite));
        x.handshake();
        let name = format!("{:?}", suite.suite());
        // Traffic on rustls first, both ways.
        x.c.writer().write_all(b"on rustls").unwrap();
        let wire = x.client_bytes();
        x.p.input.extend(wire);
        let n = x.read().unwrap();
        assert_eq!(&x.buf[..n], b"on rustls", "{name}");
        x.s.writer(&mut x.p, &mut x.scratch)
            .write_all(b"from rustls")
            .unwrap();
        assert_eq!(x.deliver(), b"from rustls", "{name}");

        // In flight at the switch: a whole record and half of the next from the client (the
        // worker read them into the session), and one of ours not yet written.
        x.c.writer().write_all(b"first").unwrap();
        let first = x.client_bytes();
        x.c.writer().write_all(b"second, split").unwrap();
        let second = x.client_bytes();
        x.p.input.extend(&first);
        x.p.input.extend(&second[..7]);
        let mut tiny = [0u8; 2];
        let n = read_small(&mut x.s, &mut x.p, &mut tiny, &mut x.scratch).unwrap();
        assert_eq!(&tiny[..n], b"fi");
        x.s.detach().unwrap();
        x.s.writer(&mut Blocked, &mut x.scratch)
            .write_all(b"queued")
            .ok();
        let carry = x.s.carry().expect("movable");
        let json = serde_json::to_string(&carry).unwrap();
        assert!(!format!("{carry:?}").contains(&format!("{:?}", carry.secrets.tx.key)));
        let carry: TlsCarry = serde_json::from_str(&json).unwrap();
        x.s = TlsSession::resume(carry).unwrap();
        assert_eq!(
            x.s.version_name(),
            if i < 3 { "TLSv1.3" } else { "TLSv1.2" }
        );

        // The successor goes on: the rest of the split record, then more both ways.
        x.p.input.extend(&second[7..]);
        let n = x.read().unwrap();
        assert_eq!(&x.buf[..n], b"rstsecond, split" as &[u8], "{name}");
        assert!(x.s.push(&mut x.p).unwrap());
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 241) as u8).collect();
        x.s.writer(&mut x.p, &mut x.scratch)
            .write_all(&big)
            .unwrap();
        assert!(x.s.push(&mut x.p).unwrap());
        let got = x.deliver();
        assert_eq!(&got[..6], b"queued", "{name}");
        assert_eq!(&got[6..], &big[..], "{name}");
        // (rustls' client buffers at most 64 KiB of plaintext: in pieces.)
        for piece in big.chunks(16_000) {
            x.c.writer().write_all(piece).unwrap();
            let wire = x.client_bytes();
            x.p.input.extend(wire);
        }
        let mut got = Vec::new();
        while got.len() < big.len() {
            let n = x.read().unwrap();
            got.extend_from_slice(&x.buf[..n]);
        }
        assert_eq!(got, big, "{name}");
        // A session on our layer passes on again as it is (a second reload).
        let again = TlsSession::resume(x.s.carry().unwrap()).unwrap();
        x.s = again;

        if i < 3 {
            // TLS 1.3: data, then a KeyUpdate: the data comes out, then the session says so.
            x.c.writer().write_all(b"before the update").unwrap();
            x.c.refresh_traffic_keys().unwrap();
            x.c.writer().write_all(b"after").unwrap();
            let wire = x.client_bytes();
            x.p.input.extend(wire);
            let n = x.read().unwrap();
            assert_eq!(&x.buf[..n], b"before the update", "{name}");
            assert!(x.s.take_rekeyed(), "{name}");
            assert!(!x.s.take_rekeyed());
            // We can still write (the worker's close), the client reads it.
            x.s.writer(&mut x.p, &mut x.scratch)
                .write_all(b"bye")
                .unwrap();
            assert_eq!(x.deliver(), b"bye", "{name}");
        } else {
            x.c.send_close_notify();
            let wire = x.client_bytes();
            x.p.input.extend(wire);
            assert_eq!(x.read().unwrap(), 0, "{name}");
        }
    }
}

/// On our record layer a tampered record gets a bad_record_mac alert and an error.
#[test]
fn a_bad_record_on_our_layer_gets_an_alert() {
    let mut x = pair("bad");
    x.handshake();
    x.s.detach().unwrap();
    x.c.writer().write_all(b"hello").unwrap();
    let mut wire = x.client_bytes();
    let last = wire.len() - 1;
    wire[last] ^= 0x40;
    x.p.input.extend(wire);
    assert_eq!(x.read().unwrap_err().kind(), io::ErrorKind::InvalidData);
    // The alert is a record of our layer: the client decrypts it as bad_record_mac.
    let out = std::mem::take(&mut x.p.output);
    x.c.read_tls(&mut &out[..]).unwrap();
    let e = x.c.process_new_packets().unwrap_err();
    assert!(format!("{e}").contains("BadRecordMac"), "{e}");
}

/// One read of `s` into `buf` that must not stop at its budget.
fn read_small(
    s: &mut TlsSession,
    p: &mut Pipe,
    buf: &mut [u8],
    c: &mut Scratch,
) -> io::Result<usize> {
    match s.read(p, buf, c, PEER)? {
        Got::Bytes(n) => Ok(n),
        other => panic!("stopped early: {other:?}"),
    }
}

/// The client's sending keys, taken out of rustls after the handshake, to write records rustls
/// itself would never send (runs of empty records).
struct Forger {
    enc: Box<dyn rustls::crypto::cipher::MessageEncrypter>,
    seq: u64,
}

impl Forger {
    fn take(x: &mut Side) -> Forger {
        let suite = x.c.negotiated_cipher_suite().unwrap();
        let rustls::SupportedCipherSuite::Tls13(suite) = suite else {
            panic!("TLS 1.3 expected");
        };
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let idle = rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap());
        let c = std::mem::replace(&mut x.c, idle.unwrap());
        let (seq, secrets) = c.dangerous_extract_secrets().unwrap().tx;
        let (key, iv) = match secrets {
            rustls::ConnectionTrafficSecrets::Aes256Gcm { key, iv }
            | rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv }
            | rustls::ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
            _ => panic!("unknown suite"),
        };
        Forger {
            enc: suite.aead_alg.encrypter(key, iv),
            seq,
        }
    }

    /// One application-data record carrying `payload` (maybe empty).
    fn record(&mut self, payload: &[u8]) -> Vec<u8> {
        let m = rustls::crypto::cipher::OutboundPlainMessage {
            typ: rustls::ContentType::ApplicationData,
            version: rustls::ProtocolVersion::TLSv1_2,
            payload: rustls::crypto::cipher::OutboundChunks::Single(payload),
        };
        self.seq += 1;
        self.enc.encrypt(m, self.seq - 1).unwrap().encode()
    }
}

/// Read `x`'s pipe to the end as the worker does (a read per turn): every read takes at most
/// the budget of ciphertext, and the data comes out whole. Returns the data and how many reads
/// stopped at the budget.
fn read_all_bounded(x: &mut Side) -> (Vec<u8>, usize) {
    let bound = x.buf.len() * 3 / 2 + crate::tls::scratch::CIPHER_SCRATCH;
    let (mut data, mut spent) = (Vec::new(), 0);
    for _ in 0..100_000 {
        let before = x.p.input.len();
        let got = x.s.read(&mut x.p, &mut x.buf, &mut x.scratch, PEER);
        let took = before - x.p.input.len();
        assert!(took <= bound, "one read took {took} bytes: {got:?}");
        match got {
            Ok(Got::Spent(n)) => {
                spent += 1;
                data.extend_from_slice(&x.buf[..n]);
            }
            Ok(Got::Bytes(n)) => data.extend_from_slice(&x.buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(x.p.input.is_empty());
                return (data, spent);
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no end");
}

/// rustls accepts 32 empty records in a row; one byte of data after them starts the count
/// again. 2 000 such runs are 64 000 records (about 1.4 MB) for 2 000 bytes of data. On
/// either engine (rustls, our record layer after a hand-over) every read stops at its
/// budget though its buffer is far from full, and the data comes out whole.
#[test]
fn records_without_data_spend_the_read_budget() {
    for (i, detached) in [false, true].into_iter().enumerate() {
        let mut x = pair(&format!("c{i}"));
        x.handshake();
        if detached {
            x.s.detach().unwrap();
        }
        let mut f = Forger::take(&mut x);
        let runs = 2_000;
        for _ in 0..runs {
            for _ in 0..31 {
                let r = f.record(b"");
                x.p.input.extend(r);
            }
            let r = f.record(b"a");
            x.p.input.extend(r);
        }
        let wire = x.p.input.len();
        let (data, spent) = read_all_bounded(&mut x);
        assert_eq!(data, vec![b'a'; runs], "detached: {detached}");
        // A read takes 32 records without data at most: some 64 000 / 32 reads, far more
        // than the ciphertext budget alone would make.
        assert!(
            spent + 1 >= runs * 31 / 32,
            "{spent} (detached: {detached})"
        );
        assert!(
            spent >= wire / (x.buf.len() * 3 / 2 + crate::tls::scratch::CIPHER_SCRATCH),
            "{spent}"
        );
    }
}

/// A write between two reads (the echo of what the first read gave) opens none of the records
/// the first read left at its bound: they stay for the next reads, which the worker queues
/// and bounds (a write is not bounded, and nothing would read what it opened until the next
/// read), and the data still comes out whole.
#[test]
fn a_write_opens_no_record_a_read_left() {
    let mut x = pair("w");
    x.handshake();
    let mut f = Forger::take(&mut x);
    for _ in 0..200 {
        for _ in 0..31 {
            let r = f.record(b"");
            x.p.input.extend(r);
        }
        let r = f.record(b"a");
        x.p.input.extend(r);
    }
    let first = match x.s.read(&mut x.p, &mut x.buf, &mut x.scratch, PEER) {
        Ok(Got::Spent(n)) => n,
        other => panic!("{other:?}"),
    };
    let left = x.s.inb.len() - x.s.inb_at;
    assert!(left > 0);
    let mut sealed = Vec::new();
    let made = x.s.encrypt(b"echo", &mut x.scratch.cipher, &mut sealed);
    assert!(matches!(made, Some(Ok(r)) if !r.is_empty()));
    assert_eq!(x.s.inb.len() - x.s.inb_at, left, "{:?}", x.s);
    assert!(x.s.plain.is_empty(), "{:?}", x.s);
    let (rest, _) = read_all_bounded(&mut x);
    assert_eq!(first + rest.len(), 200);
}

#[test]
fn a_key_update_flood_is_read_in_bounded_slices_and_piles_up_nothing() {
    // rustls allows 32 key updates between two records of data; each costs the server new
    // keys both ways. 32 000 of them (one byte of data after each 32) for a server whose
    // client never reads: what the server answers waits for its next write (one record),
    // so nothing piles up in the session while it reads.
    let mut x = pair("d");
    x.handshake();
    let rounds = 1_000;
    for _ in 0..rounds {
        for _ in 0..32 {
            x.c.refresh_traffic_keys().unwrap();
        }
        x.c.writer().write_all(b"k").unwrap();
        let v = x.client_bytes();
        x.p.input.extend(v);
    }
    x.p.room = Some(0);
    let (data, spent) = read_all_bounded(&mut x);
    assert_eq!(data, vec![b'k'; rounds]);
    assert!(spent + 1 >= rounds, "{spent}");
    assert!(!x.s.wants_write(), "{:?}", x.s);
}

/// A socket that takes part of the records: the rest waits in the session (copied out of the
/// worker's scratch, which the next connection reuses) and leaves in order, on both engines.
#[test]
fn what_the_socket_does_not_take_waits_in_order() {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 239) as u8).collect();
    for (i, detached) in [false, true].into_iter().enumerate() {
        let mut x = pair(&format!("w{i}"));
        x.handshake();
        if detached {
            x.s.detach().unwrap();
        }
        x.p.room = Some(5_000);
        let mut sent = 0;
        let mut w = x.s.writer(&mut x.p, &mut x.scratch);
        loop {
            match w.write(&big[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(sent > 5_000 && sent < big.len(), "{sent}");
        assert!(x.s.wants_write());
        // Another connection's records go through the same scratch meanwhile.
        let mut y = pair(&format!("y{i}"));
        y.handshake();
        y.s.writer(&mut y.p, &mut x.scratch)
            .write_all(b"other")
            .unwrap();
        assert_eq!(y.deliver(), b"other");
        x.p.room = None;
        assert!(x.s.push(&mut x.p).unwrap());
        assert_eq!(x.deliver(), &big[..sent], "detached: {detached}");
    }
}

/// A socket that takes nothing.
struct Blocked;

impl Write for Blocked {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
