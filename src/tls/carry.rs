//! A TLS session on its way to a reload's successor: the keys rustls gives up, in our
//! record layer's terms, and the session's buffers ([`TlsCarry`], part of the connection's
//! hand-over record). See `record.rs` for why and how the successor goes on with them.

use super::record::{DirectionKeys, RecordError, Suite, TlsSecrets};
use rustls::ConnectionTrafficSecrets;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a session's keys could not be taken from rustls (the connection then stays, and is
/// closed with 1012 like any connection that cannot move).
#[derive(Debug)]
pub enum DetachError {
    /// The handshake is not done, or the session ended.
    NotEstablished,
    /// rustls refused (its reason).
    Tls(rustls::Error),
    /// A key rustls gave is not one our layer takes.
    Record(RecordError),
}

impl fmt::Display for DetachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DetachError::NotEstablished => f.write_str("the TLS session is not established"),
            DetachError::Tls(e) => write!(f, "rustls kept its keys: {e}"),
            DetachError::Record(e) => write!(f, "unusable keys: {e}"),
        }
    }
}

impl std::error::Error for DetachError {}

/// A session as it goes to a reload's successor (inside the connection's hand-over record):
/// the keys with their sequence numbers, and the bytes in its buffers. Its `Debug` shows no
/// key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsCarry {
    /// Keys, IVs, sequence numbers.
    pub secrets: TlsSecrets,
    /// Ciphertext read, not yet decrypted.
    #[serde(with = "crate::protocol::b64")]
    pub unread: Vec<u8>,
    /// Decrypted, not yet handed to the connection's decoder (comes after its own unread
    /// bytes).
    #[serde(with = "crate::protocol::b64")]
    pub plain: Vec<u8>,
    /// Records sealed, not yet written.
    #[serde(with = "crate::protocol::b64")]
    pub unsent: Vec<u8>,
}

/// One direction's keys from rustls, with the suite they are for.
pub(super) fn own_keys(
    (seq, s): (u64, ConnectionTrafficSecrets),
) -> Result<(Suite, DirectionKeys), DetachError> {
    let (suite, key, iv) = match s {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Suite::Aes128Gcm, key, iv),
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Suite::Aes256Gcm, key, iv),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (Suite::Chacha20Poly1305, key, iv)
        }
        _ => return Err(DetachError::Record(RecordError::BadKey)),
    };
    Ok((
        suite,
        DirectionKeys {
            key: key.as_ref().to_vec(),
            iv: iv.as_ref().to_vec(),
            seq,
        },
    ))
}
