//! Passwords (argon2), signed tokens (HMAC-SHA256 with the server secret), and
//! integrator-signed visitor identities (HMAC-SHA256 with the business secret).
//!
//! The server secret is where every node that checks tokens can read it: with SQLite the
//! file `<data_dir>/secret.key` (one host); with PostgreSQL the row `token` of `kefu_keys`,
//! so a token issued by one node of a cluster is accepted by every other (clients come back
//! through the load balancer to any node) with nothing to copy between hosts. The database
//! already holds what a token stands for (agents' password hashes, businesses' identity
//! secrets), so keeping the key there gives nobody a power they did not have.

use crate::store::db::{params, Db, Kind, OptionalExtension};
use crate::store::tenancy::{hex, random_hex};
use crate::store::{self, StoreError};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// File holding the server secret inside the data dir.
pub const SECRET_FILE: &str = "secret.key";

/// Hash a password into an argon2id PHC string.
pub fn hash_password(pw: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(pw.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `pw` matches the PHC string (slow on purpose: run it off the event loop).
pub fn verify_password(pw: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(pw.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// A random password for `agent add` without `--password`.
pub fn random_password() -> String {
    random_hex(9)
}

/// The row of `kefu_keys` holding the token signing key (PostgreSQL).
const KEY_ROW: &str = "token";

/// The server's signing key.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
    /// Bumped by every rotation (PostgreSQL; 0 for the file), so nodes notice one.
    version: i64,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A secret from raw bytes (tests).
    pub fn from_bytes(b: &[u8]) -> Secret {
        Secret {
            key: b.to_vec(),
            version: 0,
        }
    }

    /// Its version in `kefu_keys` (0 for a key from the file).
    pub(crate) fn version(&self) -> i64 {
        self.version
    }

    /// The key for `conn`'s store: on SQLite `<data_dir>/secret.key` (created on first
    /// start); on PostgreSQL the cluster's, in `kefu_keys`, created by the first node to
    /// start, from that node's `secret.key` if it has one (tokens issued before the move to
    /// PostgreSQL stay valid), else a fresh random key. A node whose file holds another key
    /// says so and uses the cluster's.
    pub(crate) fn load(conn: &Db, data_dir: &Path) -> store::Result<Secret> {
        if conn.kind() == Kind::Sqlite {
            return Ok(Secret::load_or_create(data_dir)?);
        }
        ensure_keys(conn)?;
        let file = read_key(&data_dir.join(SECRET_FILE))?;
        let s = match read_row(conn)? {
            Some(s) => s,
            None => {
                let seed = match &file {
                    Some(f) => String::from_utf8_lossy(&f.key).into_owned(),
                    None => random_hex(32),
                };
                conn.execute(
                    "INSERT INTO kefu_keys (name, secret, version) VALUES (?1, ?2, 1)
                     ON CONFLICT (name) DO NOTHING",
                    params![KEY_ROW, seed],
                )?;
                read_row(conn)?.ok_or(StoreError::NoRow)?
            }
        };
        if file.as_ref().is_some_and(|f| f.key != s.key) {
            crate::warn!(
                "kefu: {} is not the cluster's token signing key: the one in PostgreSQL \
                 (kefu_keys) is used, and tokens signed with the file's are refused",
                data_dir.join(SECRET_FILE).display()
            );
        }
        Ok(s)
    }

    /// The version of the cluster's key now (PostgreSQL), to notice a rotation made on
    /// another node.
    pub(crate) fn version_in(conn: &Db) -> store::Result<Option<i64>> {
        conn.prepare_cached("SELECT version FROM kefu_keys WHERE name = ?1")?
            .query_row([KEY_ROW], |r| r.get(0))
            .optional()
    }

    /// Replace the cluster's key in PostgreSQL with a fresh one (every token signed so far
    /// stops verifying on every node once it reads the new version).
    pub(crate) fn rotate_in(conn: &Db) -> store::Result<()> {
        ensure_keys(conn)?;
        conn.execute(
            "INSERT INTO kefu_keys (name, secret, version) VALUES (?1, ?2, 1)
             ON CONFLICT (name) DO UPDATE
             SET secret = excluded.secret, version = kefu_keys.version + 1",
            params![KEY_ROW, random_hex(32)],
        )?;
        Ok(())
    }

    /// Read `<data_dir>/secret.key`, creating it on first start. Several workers start at
    /// once: the file is written under a temporary name and hard-linked into place, so a
    /// reader never sees a half-written key and exactly one key wins.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Secret> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(SECRET_FILE);
        if let Some(s) = read_key(&path)? {
            return Ok(s);
        }
        let tmp = data_dir.join(format!(".secret.{}.tmp", std::process::id()));
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(random_hex(32).as_bytes())?;
            f.sync_all()?;
        }
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        read_key(&path)?
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "empty secret"))
    }

    /// Replace `<data_dir>/secret.key` with a fresh key: every token signed so far stops
    /// verifying once the workers hold the new one. Written under a temporary name and
    /// renamed, so a worker starting meanwhile reads the old key or the new, never a mix.
    pub fn rotate(data_dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = data_dir.join(SECRET_FILE);
        if !path.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no signing key at {} (never started?)", path.display()),
            ));
        }
        let tmp = data_dir.join(format!(".secret.{}.rotate", std::process::id()));
        // A leftover (or planted link) is removed, not followed: create_new is O_EXCL.
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(random_hex(32).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("hmac key")
    }

    /// Sign a token payload.
    pub fn sign(&self, claims: &Claims) -> String {
        let body = serde_json::to_vec(claims).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&body);
        let sig = mac.finalize().into_bytes();
        format!("{}.{}", B64.encode(&body), B64.encode(sig))
    }

    /// Check a token's signature and expiry (`now` in ms).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        if token.len() > 1024 {
            return Err(TokenError::Malformed);
        }
        let (body, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let body = B64.decode(body).map_err(|_| TokenError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(&body);
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let c: Claims = serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)?;
        if c.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(c)
    }
}

/// The table of the cluster's keys (PostgreSQL), kept by this module like the uploads'.
fn ensure_keys(conn: &Db) -> store::Result<()> {
    store::ensure(
        conn,
        "CREATE TABLE IF NOT EXISTS kefu_keys (
            name TEXT PRIMARY KEY,
            secret TEXT NOT NULL,
            version INTEGER NOT NULL
        );",
    )
}

/// The cluster's key row, if written yet (a short one is refused: someone edited it).
fn read_row(conn: &Db) -> store::Result<Option<Secret>> {
    let row: Option<(String, i64)> = conn
        .prepare_cached("SELECT secret, version FROM kefu_keys WHERE name = ?1")?
        .query_row([KEY_ROW], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        Some((k, _)) if k.trim().len() < 32 => Err(StoreError::Invalid(
            "kefu_keys holds a signing key under 32 characters",
        )),
        Some((k, version)) => Ok(Some(Secret {
            key: k.trim().as_bytes().to_vec(),
            version,
        })),
        None => Ok(None),
    }
}

fn read_key(path: &Path) -> std::io::Result<Option<Secret>> {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 32 => Ok(Some(Secret::from_bytes(s.trim().as_bytes()))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Who a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// An agent (客服).
    #[serde(rename = "a")]
    Agent,
    /// A visitor.
    #[serde(rename = "v")]
    Visitor,
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Role.
    pub r: Role,
    /// Business id.
    pub b: String,
    /// Subject: agent id or visitor id.
    pub s: String,
    /// Expiry, ms since the epoch.
    pub exp: i64,
    /// Agent password version (0 for visitors).
    #[serde(default)]
    pub pv: i64,
    /// Visitor identity verified by the integrator.
    #[serde(default)]
    pub vf: bool,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not of the token shape.
    Malformed,
    /// Signed by someone else (or altered).
    BadSignature,
    /// Past its expiry.
    Expired,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "malformed token",
            TokenError::BadSignature => "bad token signature",
            TokenError::Expired => "token expired",
        })
    }
}

/// The string an integrator signs for a visitor identity.
pub fn identity_message(bid: &str, visitor_id: &str, name: &str, ts: i64) -> String {
    format!("{bid}\n{visitor_id}\n{name}\n{ts}")
}

/// The string an integrator signs for a visitor identity that also names the department
/// its conversations go to: the four lines above and the department id as a fifth.
pub fn identity_message_dept(
    bid: &str,
    visitor_id: &str,
    name: &str,
    ts: i64,
    dept: Option<&str>,
) -> String {
    match dept {
        Some(d) => format!("{bid}\n{visitor_id}\n{name}\n{ts}\n{d}"),
        None => identity_message(bid, visitor_id, name, ts),
    }
}

/// Hex HMAC-SHA256 of an identity with a business secret (what integrators compute).
pub fn identity_sig(business_secret: &str, msg: &str) -> String {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(business_secret.as_bytes()).expect("key");
    mac.update(msg.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Check an integrator signature (constant-time) and its age window (`now_s`, `max_age_s`).
#[allow(clippy::too_many_arguments)]
pub fn verify_identity(
    business_secret: &str,
    bid: &str,
    visitor_id: &str,
    name: &str,
    dept: Option<&str>,
    ts: i64,
    sig_hex: &str,
    now_s: i64,
    max_age_s: i64,
) -> Result<(), &'static str> {
    if ts > now_s + 60 || ts < now_s - max_age_s {
        return Err("identity timestamp out of range");
    }
    let sig = unhex(sig_hex).ok_or("bad identity signature")?;
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(business_secret.as_bytes()).expect("key");
    mac.update(identity_message_dept(bid, visitor_id, name, ts, dept).as_bytes());
    mac.verify_slice(&sig).map_err(|_| "bad identity signature")
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            r: Role::Agent,
            b: "shop".into(),
            s: "alice".into(),
            exp,
            pv: 1,
            vf: false,
        }
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let k = Secret::from_bytes(b"0123456789abcdef0123456789abcdef");
        let t = k.sign(&claims(2000));
        assert_eq!(k.verify(&t, 1000).unwrap(), claims(2000));
        assert_eq!(k.verify(&t, 2000), Err(TokenError::Expired));
        let other = Secret::from_bytes(b"another key another key another k");
        assert_eq!(other.verify(&t, 1000), Err(TokenError::BadSignature));
        // Swap in a forged payload with the old signature.
        let (_, sig) = t.split_once('.').unwrap();
        let forged = format!(
            "{}.{sig}",
            B64.encode(serde_json::to_vec(&claims(9_999_999)).unwrap())
        );
        assert_eq!(k.verify(&forged, 1000), Err(TokenError::BadSignature));
        assert_eq!(k.verify("garbage", 1000), Err(TokenError::Malformed));
    }

    #[test]
    fn identities() {
        let msg = identity_message("shop", "u1", "Zhang", 1000);
        let sig = identity_sig("biz-secret", &msg);
        let v = |secret, vid, dept, sig: &str, now| {
            verify_identity(secret, "shop", vid, "Zhang", dept, 1000, sig, now, 600)
        };
        assert!(v("biz-secret", "u1", None, &sig, 1000).is_ok());
        assert!(v("biz-secret", "u2", None, &sig, 1000).is_err());
        assert!(v("biz-secret", "u1", None, &sig, 1700).is_err());
        assert!(v("other", "u1", None, &sig, 1000).is_err());
        // A department is part of what is signed: added, changed or dropped, it fails.
        assert!(v("biz-secret", "u1", Some("sales"), &sig, 1000).is_err());
        let msg = identity_message_dept("shop", "u1", "Zhang", 1000, Some("sales"));
        let dsig = identity_sig("biz-secret", &msg);
        assert!(v("biz-secret", "u1", Some("sales"), &dsig, 1000).is_ok());
        assert!(v("biz-secret", "u1", Some("support"), &dsig, 1000).is_err());
        assert!(v("biz-secret", "u1", None, &dsig, 1000).is_err());
    }

    #[test]
    fn passwords() {
        let h = hash_password("pw").unwrap();
        assert!(verify_password("pw", &h));
        assert!(!verify_password("nope", &h));
        assert!(!verify_password("pw", "not a hash"));
    }
}
