//! Our own TLS record layer, for the connections a worker takes over at a reload: what kTLS
//! does in the kernel, done here because this kernel has no TLS ULP.
//!
//! rustls runs every handshake. At a hand-over the retiring worker takes each established
//! session's traffic keys, IVs and sequence numbers out of rustls ([`TlsSecrets`]) and sends
//! them to its successor inside the connection's hand-over record; the successor (and any
//! later one, which gets the same secrets passed on) seals and opens the application-data
//! records itself with `ring::aead`:
//! - TLS 1.3 (RFC 8446 sec. 5): outer type application_data, version 0x0303, the header as
//!   additional data, the real content type at the end of the plaintext (zero padding after
//!   it is allowed), nonce = IV xor the 64-bit sequence number;
//! - TLS 1.2 AES-GCM (RFC 5288): an 8-byte explicit nonce after the header (the 4-byte salt
//!   from the key block before it); rustls writes IV xor sequence number there, and so do we,
//!   so the nonces stay unique across the switch;
//! - TLS 1.2 ChaCha20-Poly1305 (RFC 7905): nonce = IV xor sequence number, nothing explicit;
//! - TLS 1.2 additional data: sequence number, type, version, plaintext length.
//!
//! Pure code: bytes in, records or typed errors out. What a record means for the connection
//! ([`classify`]): data, close_notify (an orderly end), or something this layer cannot carry
//! on from: a TLS 1.3 KeyUpdate (its next key derives from the traffic secret, which rustls
//! does not export), a TLS 1.2 renegotiation, any other alert or handshake message.

use ring::aead;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;
use zeroize::Zeroize;

/// Largest plaintext of one record (RFC 8446 sec. 5.1, RFC 5246 sec. 6.2.1).
pub const MAX_PLAINTEXT: usize = 1 << 14;

/// Largest record body accepted (RFC 8446 sec. 5.2; a TLS 1.2 AEAD record is at most 24
/// bytes over its plaintext, well within).
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;

/// Bytes of a record header: type, version, length.
pub const HEADER: usize = 5;

/// Bytes of an AEAD tag for every suite here.
const TAG: usize = 16;

/// Bytes of TLS 1.2 AES-GCM's explicit nonce.
const EXPLICIT: usize = 8;

/// `legacy_record_version` of every record after the handshake, both versions.
const RECORD_VERSION: [u8; 2] = [3, 3];

/// The negotiated protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Version {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// The AEAD of the negotiated cipher suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    Chacha20Poly1305,
}

impl Suite {
    /// Records one key may protect (RFC 8446 sec. 5.5; rustls' figures for its `ring` suites,
    /// the lower AES-GCM one for both key sizes): rustls would change keys there, we end the
    /// session.
    fn record_limit(self) -> u64 {
        match self {
            Suite::Aes128Gcm | Suite::Aes256Gcm => 1 << 23,
            Suite::Chacha20Poly1305 => u64::MAX,
        }
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Suite::Aes128Gcm => &aead::AES_128_GCM,
            Suite::Aes256Gcm => &aead::AES_256_GCM,
            Suite::Chacha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }
}

/// A record's content type (RFC 8446 sec. 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// change_cipher_spec (20).
    ChangeCipherSpec,
    /// alert (21).
    Alert,
    /// handshake (22).
    Handshake,
    /// application_data (23).
    ApplicationData,
}

impl ContentType {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            ContentType::ChangeCipherSpec => 20,
            ContentType::Alert => 21,
            ContentType::Handshake => 22,
            ContentType::ApplicationData => 23,
        }
    }

    fn from_byte(b: u8) -> Option<ContentType> {
        Some(match b {
            20 => ContentType::ChangeCipherSpec,
            21 => ContentType::Alert,
            22 => ContentType::Handshake,
            23 => ContentType::ApplicationData,
            _ => return None,
        })
    }
}

/// One direction's key material: the AEAD key, the 12-byte IV (for TLS 1.2 AES-GCM the
/// 4-byte salt and the 8 bytes rustls xors the sequence number into) and the sequence number
/// of the next record. Never printed; wiped when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionKeys {
    /// The AEAD key.
    #[serde(with = "crate::protocol::b64")]
    pub key: Vec<u8>,
    /// The IV.
    #[serde(with = "crate::protocol::b64")]
    pub iv: Vec<u8>,
    /// Sequence number of the next record.
    pub seq: u64,
}

impl fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectionKeys")
            .field("key", &"<secret>")
            .field("iv", &"<secret>")
            .field("seq", &self.seq)
            .finish()
    }
}

impl Drop for DirectionKeys {
    fn drop(&mut self) {
        self.key.zeroize();
        self.iv.zeroize();
    }
}

/// What a session needs to go on without rustls: both directions' keys (tx: ours, rx: the
/// client's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSecrets {
    /// Protocol version.
    pub version: Version,
    /// AEAD.
    pub suite: Suite,
    /// Our direction.
    pub tx: DirectionKeys,
    /// The peer's direction.
    pub rx: DirectionKeys,
}

/// Why a record cannot be sealed or opened (each is fatal for the session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// An outer content type the version does not allow after the handshake.
    ContentType(u8),
    /// A `legacy_record_version` other than 0x0303.
    Version(u16),
    /// A record body (or plaintext) over the limit; its length.
    Oversized(usize),
    /// A record body shorter than the AEAD's overhead; its length.
    Short(usize),
    /// The record does not authenticate (bad_record_mac).
    BadMac,
    /// A TLS 1.3 plaintext of padding only (no content type).
    NoContentType,
    /// The key protected as many records as it safely may (or the sequence number would
    /// wrap).
    RecordLimit,
    /// A key or IV of the wrong length for the suite.
    BadKey,
}

impl RecordError {
    /// The alert description to send the peer (RFC 8446 sec. 6.2).
    pub fn alert(self) -> u8 {
        match self {
            RecordError::ContentType(_) | RecordError::NoContentType => 10, // unexpected_message
            RecordError::BadMac => 20,                                      // bad_record_mac
            RecordError::Oversized(_) => 22,                                // record_overflow
            RecordError::Version(_) | RecordError::Short(_) => 50,          // decode_error
            RecordError::RecordLimit | RecordError::BadKey => 80,           // internal_error
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::ContentType(t) => {
                write!(f, "record of content type {t} after the handshake")
            }
            RecordError::Version(v) => write!(f, "record version {v:#06x}"),
            RecordError::Oversized(n) => write!(f, "record of {n} bytes is over the limit"),
            RecordError::Short(n) => {
                write!(f, "record of {n} bytes is shorter than its AEAD overhead")
            }
            RecordError::BadMac => f.write_str("record does not authenticate (bad_record_mac)"),
            RecordError::NoContentType => f.write_str("TLS 1.3 record without a content type"),
            RecordError::RecordLimit => {
                f.write_str("the key protected as many records as it safely may")
            }
            RecordError::BadKey => f.write_str("key or IV of the wrong length"),
        }
    }
}

impl std::error::Error for RecordError {}

/// One opened record: `used` bytes of the input were its own, its plaintext is at `plain`
/// in the (decrypted in place) input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Bytes of input the record took (header included).
    pub used: usize,
    /// Its real content type.
    pub kind: ContentType,
    /// Where its plaintext is in the input.
    pub plain: Range<usize>,
}

/// What an opened record means for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Application data: hand it on.
    Data,
    /// close_notify: the peer ends the stream in order.
    CloseNotify,
    /// A TLS 1.3 KeyUpdate: the peer's next records use a key this layer cannot derive.
    KeyUpdate,
    /// Anything else: the session ends.
    Refused(Refusal),
}

/// Records [`classify`] ends a session on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An alert other than close_notify.
    Alert {
        /// Its level byte.
        level: u8,
        /// Its description.
        description: u8,
    },
    /// A handshake message after the handshake (a TLS 1.2 renegotiation, a client's
    /// NewSessionTicket...): its type.
    Handshake(u8),
    /// A content type that has no place after the handshake.
    ContentType(u8),
    /// An alert that is not two bytes, or an empty handshake record.
    Malformed,
    /// More application-data records without data in a row than [`EMPTY_RUN`].
    EmptyRun,
}

/// Empty application-data records a peer may send in a row, as rustls allows (its
/// `ALLOWED_CONSECUTIVE_EMPTY_FRAGMENTS_MAX`): both engines end a session on the next one, so
/// a client that sends nothing else cannot keep a reader busy for nothing.
pub const EMPTY_RUN: u8 = 32;

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Alert { level, description } => {
                write!(f, "alert {description} (level {level}) from the peer")
            }
            Refusal::Handshake(t) => write!(
                f,
                "handshake message of type {t} after the hand-over (renegotiation is not supported)"
            ),
            Refusal::ContentType(t) => write!(f, "record of content type {t}"),
            Refusal::Malformed => f.write_str("malformed alert or handshake record"),
            Refusal::EmptyRun => write!(f, "more than {EMPTY_RUN} empty records in a row"),
        }
    }
}

/// What record `kind` with plaintext `plain` means on a session of `version`.
pub fn classify(version: Version, kind: ContentType, plain: &[u8]) -> Inbound {
    match kind {
        ContentType::ApplicationData => Inbound::Data,
        ContentType::Alert => match *plain {
            [_, 0] => Inbound::CloseNotify,
            [level, description] => Inbound::Refused(Refusal::Alert { level, description }),
            _ => Inbound::Refused(Refusal::Malformed),
        },
        ContentType::Handshake => match (version, plain.first()) {
            // key_update (RFC 8446 sec. 4.6.3); its body does not matter, we cannot follow.
            (Version::Tls13, Some(24)) => Inbound::KeyUpdate,
            (_, Some(&t)) => Inbound::Refused(Refusal::Handshake(t)),
            (_, None) => Inbound::Refused(Refusal::Malformed),
        },
        ContentType::ChangeCipherSpec => Inbound::Refused(Refusal::ContentType(20)),
    }
}

/// The header at the front of `buf`: the outer content type and the body length, `None` if
/// fewer than [`HEADER`] bytes are there. Checked before any body is waited for, so an
/// oversized or foreign record is refused from its first five bytes.
pub fn header(version: Version, buf: &[u8]) -> Result<Option<(ContentType, usize)>, RecordError> {
    let Some(h) = buf.get(..HEADER) else {
        return Ok(None);
    };
    // After the handshake TLS 1.3 sends everything as application_data (RFC 8446 sec. 5.2);
    // TLS 1.2 protects alerts and handshake messages under their own type.
    let kind = match (version, ContentType::from_byte(h[0])) {
        (Version::Tls13, Some(k @ ContentType::ApplicationData))
        | (
            Version::Tls12,
            Some(k @ (ContentType::ApplicationData | ContentType::Alert | ContentType::Handshake)),
        ) => k,
        _ => return Err(RecordError::ContentType(h[0])),
    };
    if h[1..3] != RECORD_VERSION {
        return Err(RecordError::Version(u16::from_be_bytes([h[1], h[2]])));
    }
    let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
    if len > MAX_CIPHERTEXT {
        return Err(RecordError::Oversized(len));
    }
    Ok(Some((kind, len)))
}

/// One direction's key, ready for ring.
fn aead_key(suite: Suite, keys: &DirectionKeys) -> Result<aead::LessSafeKey, RecordError> {
    if keys.iv.len() != aead::NONCE_LEN {
        return Err(RecordError::BadKey);
    }
    let key =
        aead::UnboundKey::new(suite.algorithm(), &keys.key).map_err(|_| RecordError::BadKey)?;
    Ok(aead::LessSafeKey::new(key))
}

/// IV xor the sequence number (right-aligned), the nonce of both versions' constructions;
/// refused once the suite's record limit is reached.
fn nonce_bytes(suite: Suite, keys: &DirectionKeys) -> Result<[u8; aead::NONCE_LEN], RecordError> {
    if keys.seq >= suite.record_limit().min(u64::MAX - 1) {
        return Err(RecordError::RecordLimit);
    }
    let mut n = [0u8; aead::NONCE_LEN];
    n.copy_from_slice(&keys.iv);
    for (b, s) in n[4..].iter_mut().zip(keys.seq.to_be_bytes()) {
        *b ^= s;
    }
    Ok(n)
}

/// TLS 1.2's additional data (RFC 5246 sec. 6.2.3.3).
fn aad12(seq: u64, kind: u8, len: usize) -> aead::Aad<[u8; 13]> {
    let mut a = [0u8; 13];
    a[..8].copy_from_slice(&seq.to_be_bytes());
    a[8] = kind;
    a[9..11].copy_from_slice(&RECORD_VERSION);
    a[11..].copy_from_slice(&(len as u16).to_be_bytes());
    aead::Aad::from(a)
}

/// A session's record protection in both directions.
pub struct RecordLayer {
    /// The material the keys came from, with the sequence numbers kept current (passed on
    /// at the next reload).
    secrets: TlsSecrets,
    tx: aead::LessSafeKey,
    rx: aead::LessSafeKey,
    /// Empty application-data records opened since the last one with data.
    empty_run: u8,
}

impl fmt::Debug for RecordLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordLayer")
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl RecordLayer {
    /// The layer `secrets` describe.
    pub fn new(secrets: TlsSecrets) -> Result<RecordLayer, RecordError> {
        Ok(RecordLayer {
            tx: aead_key(secrets.suite, &secrets.tx)?,
            rx: aead_key(secrets.suite, &secrets.rx)?,
            secrets,
            empty_run: 0,
        })
    }

    /// Count an opened application-data record (`empty`: without data); refused past
    /// [`EMPTY_RUN`] empty ones in a row.
    pub fn note_data(&mut self, empty: bool) -> Result<(), Refusal> {
        if !empty {
            self.empty_run = 0;
        } else if self.empty_run == EMPTY_RUN {
            return Err(Refusal::EmptyRun);
        } else {
            self.empty_run += 1;
        }
        Ok(())
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.secrets.version
    }

    /// The secrets as they are now (sequence numbers included), to pass on.
    pub fn secrets(&self) -> &TlsSecrets {
        &self.secrets
    }

    /// Append one record of type `kind` carrying `plain` (at most [`MAX_PLAINTEXT`] bytes).
    pub fn seal(
        &mut self,
        kind: ContentType,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        if plain.len() > MAX_PLAINTEXT {
            return Err(RecordError::Oversized(plain.len()));
        }
        let tx = &mut self.secrets.tx;
        let nonce = nonce_bytes(self.secrets.suite, tx)?;
        let start = out.len();
        let sealed = match (self.secrets.version, self.secrets.suite) {
            (Version::Tls13, _) => {
                let len = plain.len() + 1 + TAG;
                let head = [23, 3, 3, (len >> 8) as u8, len as u8];
                out.reserve(HEADER + len);
                out.extend_from_slice(&head);
                out.extend_from_slice(plain);
                out.push(kind.byte());
                self.tx.seal_in_place_separate_tag(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(head),
                    &mut out[start + HEADER..],
                )
            }
            (Version::Tls12, suite) => {
                let explicit = if suite == Suite::Chacha20Poly1305 {
                    0
                } else {
                    EXPLICIT
                };
                let len = explicit + plain.len() + TAG;
                out.reserve(HEADER + len);
                out.extend_from_slice(&[kind.byte(), 3, 3, (len >> 8) as u8, len as u8]);
                out.extend_from_slice(&nonce[aead::NONCE_LEN - explicit..]);
                out.extend_from_slice(plain);
                self.tx.seal_in_place_separate_tag(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aad12(tx.seq, kind.byte(), plain.len()),
                    &mut out[start + HEADER + explicit..],
                )
            }
        };
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                tx.seq += 1;
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(RecordError::Oversized(plain.len()))
            }
        }
    }

    /// Append `data` as application-data records of at most [`MAX_PLAINTEXT`] bytes each.
    pub fn seal_data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        for chunk in data.chunks(MAX_PLAINTEXT) {
            self.seal(ContentType::ApplicationData, chunk, out)?;
        }
        Ok(())
    }

    /// Open the record at the front of `buf` in place: `None` until all of it is there.
    pub fn open(&mut self, buf: &mut [u8]) -> Result<Option<Opened>, RecordError> {
        let version = self.secrets.version;
        let Some((outer, len)) = header(version, buf)? else {
            return Ok(None);
        };
        let Some(record) = buf.get_mut(..HEADER + len) else {
            return Ok(None);
        };
        let rx = &mut self.secrets.rx;
        let (head, body) = record.split_at_mut(HEADER);
        let opened = match (version, self.secrets.suite) {
            (Version::Tls13, _) => {
                if len < TAG + 1 {
                    return Err(RecordError::Short(len));
                }
                let aad = aead::Aad::from([head[0], head[1], head[2], head[3], head[4]]);
                let nonce =
                    aead::Nonce::assume_unique_for_key(nonce_bytes(self.secrets.suite, rx)?);
                let plain = self
                    .rx
                    .open_in_place(nonce, aad, body)
                    .map_err(|_| RecordError::BadMac)?;
                // The content type is the last byte that is not padding.
                let end = plain
                    .iter()
                    .rposition(|&b| b != 0)
                    .ok_or(RecordError::NoContentType)?;
                if end > MAX_PLAINTEXT {
                    return Err(RecordError::Oversized(end));
                }
                let kind = ContentType::from_byte(plain[end])
                    .filter(|k| *k != ContentType::ChangeCipherSpec)
                    .ok_or(RecordError::ContentType(plain[end]))?;
                Opened {
                    used: HEADER + len,
                    kind,
                    plain: HEADER..HEADER + end,
                }
            }
            (Version::Tls12, suite) => {
                let explicit = if suite == Suite::Chacha20Poly1305 {
                    0
                } else {
                    EXPLICIT
                };
                if len < explicit + TAG {
                    return Err(RecordError::Short(len));
                }
                let plain_len = len - explicit - TAG;
                if plain_len > MAX_PLAINTEXT {
                    return Err(RecordError::Oversized(plain_len));
                }
                let mut nonce = nonce_bytes(suite, rx)?;
                if explicit > 0 {
                    // The salt from the key block, then the nonce the sender chose.
                    nonce[4..].copy_from_slice(&body[..EXPLICIT]);
                }
                self.rx
                    .open_within(
                        aead::Nonce::assume_unique_for_key(nonce),
                        aad12(rx.seq, outer.byte(), plain_len),
                        body,
                        explicit..,
                    )
                    .map_err(|_| RecordError::BadMac)?;
                Opened {
                    used: HEADER + len,
                    kind: outer,
                    plain: HEADER..HEADER + plain_len,
                }
            }
        };
        rx.seq += 1;
        Ok(Some(opened))
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
