//! The record layer against itself: every version and suite both ways, records split
//! anywhere, tampering, replays, oversize and foreign records, post-handshake messages.

use super::*;

fn keys(seed: u8, len: usize, seq: u64) -> DirectionKeys {
    DirectionKeys {
        key: (0..len as u8).map(|i| i ^ seed).collect(),
        iv: (0..12u8).map(|i| i.wrapping_mul(seed)).collect(),
        seq,
    }
}

/// A server layer and the client's mirror of it (directions swapped).
fn pair(version: Version, suite: Suite) -> (RecordLayer, RecordLayer) {
    let len = if suite == Suite::Aes128Gcm { 16 } else { 32 };
    let s = TlsSecrets {
        version,
        suite,
        tx: keys(3, len, 7),
        rx: keys(5, len, (1 << 23) - 100),
    };
    let mut c = s.clone();
    std::mem::swap(&mut c.tx, &mut c.rx);
    (RecordLayer::new(s).unwrap(), RecordLayer::new(c).unwrap())
}

const ALL: [(Version, Suite); 6] = [
    (Version::Tls13, Suite::Aes128Gcm),
    (Version::Tls13, Suite::Aes256Gcm),
    (Version::Tls13, Suite::Chacha20Poly1305),
    (Version::Tls12, Suite::Aes128Gcm),
    (Version::Tls12, Suite::Aes256Gcm),
    (Version::Tls12, Suite::Chacha20Poly1305),
];

#[test]
fn sealed_records_open_in_order_and_split_anywhere() {
    for (v, s) in ALL {
        let (mut a, mut b) = pair(v, s);
        let big: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        a.seal_data(b"hello", &mut wire).unwrap();
        a.seal_data(&big, &mut wire).unwrap();
        a.seal(ContentType::Alert, &[1, 0], &mut wire).unwrap();
        let mut got = Vec::new();
        let mut at = 0;
        let mut end = None;
        while at < wire.len() {
            // A record is only taken once all of it is there.
            let (_, len) = header(v, &wire[at..]).unwrap().unwrap();
            let mut short = wire[at..at + HEADER + len - 1].to_vec();
            assert_eq!(b.open(&mut short).unwrap(), None);
            let o = b.open(&mut wire[at..]).unwrap().unwrap();
            let p = &wire[at + o.plain.start..at + o.plain.end];
            match classify(v, o.kind, p) {
                Inbound::Data => got.extend_from_slice(p),
                other => end = Some(other),
            }
            at += o.used;
        }
        assert_eq!(got.len(), 5 + big.len(), "{v:?} {s:?}");
        assert_eq!(&got[5..], &big[..]);
        assert_eq!(end, Some(Inbound::CloseNotify));
        assert_eq!(a.secrets().tx.seq, 7 + 5);
        assert_eq!(b.secrets().rx.seq, 7 + 5);
    }
}

#[test]
fn tampering_oversize_and_foreign_records_are_typed_errors() {
    for (v, s) in ALL {
        let (mut a, mut b) = pair(v, s);
        let mut wire = Vec::new();
        a.seal_data(b"payload", &mut wire).unwrap();
        let last = wire.len() - 1;
        wire[last] ^= 1;
        assert_eq!(b.open(&mut wire.clone()), Err(RecordError::BadMac));
        // Replayed at the next sequence number, the untouched record fails too.
        let (mut a, mut b) = pair(v, s);
        let mut wire = Vec::new();
        a.seal_data(b"x", &mut wire).unwrap();
        let copy = wire.clone();
        assert!(b.open(&mut wire).unwrap().is_some());
        assert_eq!(b.open(&mut copy.clone()), Err(RecordError::BadMac));
    }
    let mut h = vec![23, 3, 3, 0x41, 1];
    assert_eq!(
        header(Version::Tls13, &h),
        Err(RecordError::Oversized(0x4101))
    );
    h[0] = 22;
    h[3] = 0;
    assert_eq!(
        header(Version::Tls13, &h),
        Err(RecordError::ContentType(22))
    );
    assert_eq!(
        header(Version::Tls12, &[20, 3, 3, 0, 1]),
        Err(RecordError::ContentType(20))
    );
    assert_eq!(
        header(Version::Tls12, &[23, 3, 1, 0, 1]),
        Err(RecordError::Version(0x0301))
    );
    let (_, mut b) = pair(Version::Tls13, Suite::Aes128Gcm);
    assert_eq!(
        b.open(&mut [23, 3, 3, 0, 3, 1, 2, 3]),
        Err(RecordError::Short(3))
    );
    let (mut a, _) = pair(Version::Tls12, Suite::Aes128Gcm);
    assert_eq!(
        a.seal_data(&[], &mut Vec::new()),
        Ok(()),
        "nothing to seal is no record"
    );
    assert_eq!(
        a.seal(
            ContentType::ApplicationData,
            &[0; MAX_PLAINTEXT + 1],
            &mut Vec::new()
        ),
        Err(RecordError::Oversized(MAX_PLAINTEXT + 1))
    );
    let mut bad = pair(Version::Tls13, Suite::Aes256Gcm).0.secrets().clone();
    bad.tx.key.truncate(16);
    assert!(matches!(RecordLayer::new(bad), Err(RecordError::BadKey)));
}

#[test]
fn post_handshake_messages_are_classified() {
    use Version::*;
    assert_eq!(
        classify(Tls13, ContentType::Handshake, &[24, 0, 0, 1, 0]),
        Inbound::KeyUpdate
    );
    assert_eq!(
        classify(Tls12, ContentType::Handshake, &[1, 0, 0, 0]),
        Inbound::Refused(Refusal::Handshake(1))
    );
    assert_eq!(
        classify(Tls13, ContentType::Alert, &[2, 20]),
        Inbound::Refused(Refusal::Alert {
            level: 2,
            description: 20
        })
    );
    assert_eq!(
        classify(Tls13, ContentType::Alert, &[1]),
        Inbound::Refused(Refusal::Malformed)
    );
    assert_eq!(
        classify(Tls12, ContentType::Handshake, &[]),
        Inbound::Refused(Refusal::Malformed)
    );
}

#[test]
fn a_key_ends_at_its_record_limit() {
    let (mut aes, _) = pair(Version::Tls13, Suite::Aes128Gcm);
    let (mut chacha, _) = pair(Version::Tls13, Suite::Chacha20Poly1305);
    // The client's direction starts 100 records short of AES-GCM's limit.
    let swap = |l: &mut RecordLayer| {
        let mut s = l.secrets().clone();
        std::mem::swap(&mut s.tx, &mut s.rx);
        *l = RecordLayer::new(s).unwrap();
    };
    swap(&mut aes);
    swap(&mut chacha);
    let mut out = Vec::new();
    for _ in 0..100 {
        aes.seal_data(b"x", &mut out).unwrap();
        chacha.seal_data(b"x", &mut out).unwrap();
    }
    assert_eq!(aes.seal_data(b"x", &mut out), Err(RecordError::RecordLimit));
    assert_eq!(chacha.seal_data(b"x", &mut out), Ok(()));
}

#[test]
fn secrets_never_print() {
    let (a, _) = pair(Version::Tls13, Suite::Aes128Gcm);
    let text = format!("{a:?}");
    assert!(
        text.contains("<secret>") && !text.contains("[3, 2, 1"),
        "{text}"
    );
}
