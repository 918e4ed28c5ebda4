//! `tls_record` seeds: records sealed by kefu's record layer for every version and AEAD.

use crate::{seed, Seeds};
use kefu::tls::record::{ContentType, DirectionKeys, RecordLayer, Suite, TlsSecrets, Version};

/// The fuzz target's keys for first byte `first` (see `fuzz_targets/tls_record.rs`), as the
/// client holds them: what it seals, the target's server opens.
fn tls_client(first: u8) -> RecordLayer {
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
    // The server's rx (seed 5) is the client's tx.
    RecordLayer::new(TlsSecrets {
        version,
        suite,
        tx: keys(5),
        rx: keys(3),
    })
    .expect("keys")
}

/// Records a client of every version and AEAD sends: data, data then close_notify, a TLS 1.3
/// KeyUpdate, a TLS 1.2 renegotiation, a fatal alert, a record cut short, an oversized and a
/// foreign header.
pub(crate) fn tls_record() -> Seeds {
    let mut out = Vec::new();
    for first in 0..6u8 {
        let name = match first {
            0 => "tls13_aes128",
            1 => "tls12_aes128",
            2 => "tls13_aes256",
            3 => "tls12_aes256",
            4 => "tls13_chacha",
            _ => "tls12_chacha",
        };
        let mut c = tls_client(first);
        let mut data = vec![first];
        c.seal_data(b"hello \xe5\xae\xa2\xe6\x9c\x8d\n", &mut data)
            .unwrap();
        out.push(seed(&format!("{name}_data"), data.clone()));
        c.seal(ContentType::Alert, &[1, 0], &mut data).unwrap();
        out.push(seed(&format!("{name}_then_close_notify"), data));
        let mut c = tls_client(first);
        let mut msg = vec![first];
        if first & 1 == 0 {
            c.seal(ContentType::Handshake, &[24, 0, 0, 1, 1], &mut msg)
                .unwrap();
            out.push(seed(&format!("{name}_key_update"), msg));
        } else {
            c.seal(ContentType::Handshake, &[1, 0, 0, 0], &mut msg)
                .unwrap();
            out.push(seed(&format!("{name}_renegotiation"), msg));
        }
        let mut c = tls_client(first);
        let mut alert = vec![first];
        c.seal(ContentType::Alert, &[2, 40], &mut alert).unwrap();
        out.push(seed(&format!("{name}_fatal_alert"), alert));
        let mut c = tls_client(first);
        let mut cut = vec![first];
        c.seal_data(&[7; 300], &mut cut).unwrap();
        cut.truncate(200);
        out.push(seed(&format!("{name}_cut_short"), cut));
    }
    out.push(seed("oversized_header", [0u8, 23, 3, 3, 0x41, 0x01, 0, 0]));
    out.push(seed("foreign_header", [1u8, 22, 3, 1, 0, 4, 1, 0, 0, 0]));
    out
}
