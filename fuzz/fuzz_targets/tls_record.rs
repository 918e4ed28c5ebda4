//! Fuzz our TLS record layer (`kefu::tls::record`), which carries TLS sessions on after a
//! reload's hand-over. The first byte picks the version and the AEAD (and a chunk size);
//! the rest is used three ways:
//! - opened as records from a client, in place, record after record like a session's read
//!   loop: each step is a record lying inside its input, "need more", or a typed error,
//!   never a panic; a header over the limit is refused from its first five bytes;
//! - sealed as application data by the peer's mirror layer and opened back, split into
//!   chunks of the chosen size: the same bytes come out, in order, and a record is never
//!   taken before all of it is there;
//! - classified as the plaintext of every content type.
#![no_main]

use kefu::tls::record::{
    classify, header, ContentType, DirectionKeys, RecordLayer, Suite, TlsSecrets, Version, HEADER,
    MAX_CIPHERTEXT,
};
use libfuzzer_sys::fuzz_target;

fn secrets(first: u8) -> TlsSecrets {
    let version = if first & 1 == 0 {
        Version::Tls13
    } else {
        Version::Tls12
    };
    let (suite, len) = match (first >> 1) % 3 {
        0 => (Suite::Aes128Gcm, 16),
        1 => (Suite::Aes256Gcm, 32),
        _ => (Suite::Chacha20Poly1305, 32),
    };
    let keys = |seed: u8| DirectionKeys {
        key: (0..len).map(|i| i ^ seed).collect(),
        iv: (0..12u8).map(|i| i.wrapping_mul(seed)).collect(),
        seq: u64::from(seed),
    };
    TlsSecrets {
        version,
        suite,
        tx: keys(3),
        rx: keys(5),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let s = secrets(first);
    let version = s.version;

    // Foreign bytes as a client's records.
    let mut server = RecordLayer::new(s.clone()).unwrap();
    let mut input = rest.to_vec();
    let mut at = 0;
    loop {
        let h = header(version, &input[at..]);
        match server.open(&mut input[at..]) {
            Ok(Some(o)) => {
                assert!(o.used >= HEADER && at + o.used <= rest.len());
                assert!(o.plain.start >= HEADER && o.plain.end <= o.used);
                let _ = classify(
                    version,
                    o.kind,
                    &input[at + o.plain.start..at + o.plain.end],
                );
                at += o.used;
            }
            Ok(None) => {
                if let Ok(Some((_, len))) = h {
                    assert!(len <= MAX_CIPHERTEXT && input.len() - at < HEADER + len);
                }
                break;
            }
            Err(e) => {
                let _ = (e.to_string(), e.alert());
                break;
            }
        }
    }

    // The same bytes sealed by the client's mirror, opened back in chunks.
    let mut mirror = s;
    std::mem::swap(&mut mirror.tx, &mut mirror.rx);
    let mut client = RecordLayer::new(mirror).unwrap();
    let mut server = RecordLayer::new(secrets(first)).unwrap();
    let mut wire = Vec::new();
    client.seal_data(rest, &mut wire).unwrap();
    let chunk = usize::from(first >> 3) * 97 + 1;
    let mut buf = Vec::new();
    let mut got = Vec::new();
    for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(o) = server.open(&mut buf).unwrap() {
            assert_eq!(o.kind, ContentType::ApplicationData);
            got.extend_from_slice(&buf[o.plain.clone()]);
            buf.drain(..o.used);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(got, rest);

    for kind in [
        ContentType::ApplicationData,
        ContentType::Alert,
        ContentType::Handshake,
        ContentType::ChangeCipherSpec,
    ] {
        let _ = classify(version, kind, rest);
    }
});
