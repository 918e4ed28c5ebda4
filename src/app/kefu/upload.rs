//! Image uploads: type decided by magic bytes (never by the client's Content-Type or name),
//! size-limited, metadata stripped ([`super::strip`]), stored content-addressed, recorded in
//! `kefu_uploads` (who, how big, whether a message uses it) and served back by URL,
//! same-origin only. Uploads no message references are deleted after `upload_orphan_after`
//! ([`sweep`]). File and database I/O run on the plain store thread, never on the loop.
//!
//! Where the bytes live follows the store: with SQLite, files under `<data_dir>/uploads`
//! (every node of a one-host cluster shares the data dir); with PostgreSQL, the table
//! `kefu_upload_bytes`, so an image uploaded through one node is served by every node with
//! nothing shared but the database (uploads are bounded by `upload_max_bytes`, 2 MiB by
//! default, and by the per-business daily quota). A file under `<data_dir>/uploads` is
//! still served when the table has no row for it (uploads made before the move to
//! PostgreSQL).

use super::routing;
use super::strip::{self, StripError};
use crate::protocol::http::response::Response;
use crate::store::db::{params, Db, Kind, OptionalExtension};
use crate::store::tenancy::hex;
use crate::store::{self as db, StoreError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// URL prefix of served uploads.
pub(crate) const URL_PREFIX: &str = "/uploads/";

/// An accepted image type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageType {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// GIF.
    Gif,
    /// WebP.
    Webp,
}

impl ImageType {
    /// File extension.
    pub(crate) fn ext(self) -> &'static str {
        match self {
            ImageType::Png => "png",
            ImageType::Jpeg => "jpg",
            ImageType::Gif => "gif",
            ImageType::Webp => "webp",
        }
    }

    /// MIME type.
    pub(crate) fn mime(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Gif => "image/gif",
            ImageType::Webp => "image/webp",
        }
    }

    fn from_ext(e: &str) -> Option<ImageType> {
        Some(match e {
            "png" => ImageType::Png,
            "jpg" => ImageType::Jpeg,
            "gif" => ImageType::Gif,
            "webp" => ImageType::Webp,
            _ => return None,
        })
    }
}

/// The image type of `b` by its magic bytes, if it is one we accept.
pub(crate) fn sniff(b: &[u8]) -> Option<ImageType> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageType::Png)
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageType::Jpeg)
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some(ImageType::Gif)
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some(ImageType::Webp)
    } else {
        None
    }
}

/// Whether `url` names an upload of ours (`/uploads/<64 hex>.<ext>`): messages may only
/// reference those, so no tracking pixels or `javascript:` URLs get into a conversation.
pub(crate) fn valid_url(url: &str) -> bool {
    url.strip_prefix(URL_PREFIX)
        .is_some_and(|n| parse_name(n).is_some())
}

/// Split a stored file name into its hash and type.
pub(crate) fn parse_name(name: &str) -> Option<(&str, ImageType)> {
    let (h, e) = name.split_once('.')?;
    (h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(())?;
    Some((h, ImageType::from_ext(e)?))
}

/// Directory of uploads.
pub(crate) fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("uploads")
}

/// The stored name of `body`: content-addressed, so the same image uploaded twice is
/// stored once.
fn name_of(body: &[u8], t: ImageType) -> String {
    format!("{}.{}", hex(&Sha256::digest(body)), t.ext())
}

/// Store `body` (already checked) as a file and return its name. Written under a temporary
/// name and renamed, so a reader never sees half a file.
pub(crate) fn save(data_dir: &Path, body: &[u8], t: ImageType) -> std::io::Result<String> {
    let name = name_of(body, t);
    let d = dir(data_dir);
    std::fs::create_dir_all(&d)?;
    let path = d.join(&name);
    if path.exists() {
        return Ok(name);
    }
    let tmp = d.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, &path)?;
    Ok(name)
}

/// The bytes of upload `name` in the database (PostgreSQL only; None on SQLite).
fn stored_bytes(conn: &Db, name: &str) -> db::Result<Option<Vec<u8>>> {
    if conn.kind() != Kind::Postgres {
        return Ok(None);
    }
    conn.prepare_cached("SELECT body FROM kefu_upload_bytes WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

/// The response serving a stored upload (404 if absent, 503 if the store failed).
pub(crate) fn serve(conn: &Db, data_dir: &Path, name: &str) -> Response {
    let Some((_, t)) = parse_name(name) else {
        return Response::error(404);
    };
    let found = match stored_bytes(conn, name) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => std::fs::read(dir(data_dir).join(name)),
        Err(_) => return Response::error(503),
    };
    match found {
        Ok(body) => Response {
            status: 200,
            headers: vec![
                ("Content-Type".into(), t.mime().into()),
                ("X-Content-Type-Options".into(), "nosniff".into()),
                (
                    "Content-Security-Policy".into(),
                    "default-src 'none'".into(),
                ),
                (
                    "Cache-Control".into(),
                    "public, max-age=31536000, immutable".into(),
                ),
                // Same-origin only: no CORS header, and other sites may not even embed them
                // (the pages that show them are served by kefu itself).
                ("Cross-Origin-Resource-Policy".into(), "same-origin".into()),
            ],
            body,
        },
        Err(_) => Response::error(404),
    }
}

/// The table of uploads. Kept by this module (not the store's schema) since only uploads use
/// it; created at worker start, before the loop serves anyone.
pub(crate) fn ensure_table(conn: &Db) -> db::Result<()> {
    db::ensure(
        conn,
        "CREATE TABLE IF NOT EXISTS kefu_uploads (
            name TEXT PRIMARY KEY,
            bid TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            referenced INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS kefu_uploads_bid ON kefu_uploads (bid, created_at);
        CREATE INDEX IF NOT EXISTS kefu_uploads_orphans ON kefu_uploads (created_at)
            WHERE referenced = 0;",
    )?;
    if conn.kind() == Kind::Postgres {
        db::ensure(
            conn,
            "CREATE TABLE IF NOT EXISTS kefu_upload_bytes (
                name TEXT PRIMARY KEY,
                body BYTEA NOT NULL
            );",
        )?;
    }
    Ok(())
}

/// Who uploads.
#[derive(Debug, Clone)]
pub(crate) enum Uploader {
    /// An agent of this business.
    Agent(String),
    /// A visitor: `(bid, visitor_id)`.
    Visitor(String, String),
}

impl Uploader {
    /// The business the upload is for.
    pub(crate) fn bid(&self) -> &str {
        match self {
            Uploader::Agent(b) | Uploader::Visitor(b, _) => b,
        }
    }
}

/// Why an upload was refused after reaching the store thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A visitor without an open conversation (nobody could be shown the image).
    NoConversation,
    /// Not a well-formed image.
    BadImage(StripError),
    /// The business's daily quota is spent; retry after this long.
    Quota(Duration),
}

/// A stored upload.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// File name under [`URL_PREFIX`].
    pub(crate) name: String,
    /// Type.
    pub(crate) kind: ImageType,
    /// Size as stored (after stripping).
    pub(crate) bytes: usize,
}

/// What one day means for the business quota, ms.
const DAY_MS: i64 = 86_400_000;

/// Check, clean and store an upload: the visitor must have an open conversation, the
/// business must have quota left (`quota` bytes per 24 h, 0: none), metadata is stripped.
pub(crate) fn accept(
    conn: &Db,
    data_dir: &Path,
    who: &Uploader,
    body: &[u8],
    kind: ImageType,
    quota: u64,
    now: i64,
) -> db::Result<Result<Stored, Refused>> {
    if let Uploader::Visitor(bid, vid) = who {
        if routing::open_of_visitor(conn, bid, vid)?.is_none() {
            return Ok(Err(Refused::NoConversation));
        }
    }
    let clean = match strip::strip(kind, body) {
        Ok(c) => c,
        Err(e) => return Ok(Err(Refused::BadImage(e))),
    };
    let bid = who.bid();
    if quota > 0 {
        let (used, oldest): (i64, Option<i64>) = conn
            .prepare_cached(
                "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT), MIN(created_at) FROM kefu_uploads
                 WHERE bid = ?1 AND created_at > ?2",
            )?
            .query_row(params![bid, now - DAY_MS], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if used.max(0) as u64 + clean.len() as u64 > quota {
            // Room comes back as the oldest upload of the window leaves it.
            let at = oldest.unwrap_or(now) + DAY_MS;
            let wait = Duration::from_millis((at - now).clamp(1000, DAY_MS) as u64);
            return Ok(Err(Refused::Quota(wait)));
        }
    }
    // The same image again refreshes its time, so a re-upload gets its full grace period.
    let name = match conn.kind() {
        Kind::Sqlite => {
            let name = save(data_dir, &clean, kind)?;
            conn.prepare_cached(
                "INSERT INTO kefu_uploads (name, bid, bytes, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET created_at = excluded.created_at",
            )?
            .execute(params![name, bid, clean.len() as i64, now])?;
            name
        }
        Kind::Postgres => {
            // Bytes and row in one statement, so neither is ever left without the other.
            // DO UPDATE (not NOTHING) on the bytes: a sweep deleting this name at the same
            // moment is waited for, and the bytes are then written again.
            let name = name_of(&clean, kind);
            conn.prepare_cached(
                "WITH b AS (
                    INSERT INTO kefu_upload_bytes (name, body) VALUES (?1, ?5)
                    ON CONFLICT (name) DO UPDATE SET body = excluded.body
                 )
                 INSERT INTO kefu_uploads (name, bid, bytes, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET created_at = excluded.created_at",
            )?
            .execute(params![name, bid, clean.len() as i64, now, clean])?;
            name
        }
    };
    Ok(Ok(Stored {
        name,
        kind,
        bytes: clean.len(),
    }))
}

/// A stored message uses `url`: keep its file for good.
pub(crate) fn mark_referenced(conn: &Db, url: &str) -> db::Result<()> {
    if let Some(name) = url.strip_prefix(URL_PREFIX) {
        conn.prepare_cached("UPDATE kefu_uploads SET referenced = 1 WHERE name = ?1")?
            .execute([name])?;
    }
    Ok(())
}

/// Whether `url` is an upload recorded for business `bid`.
pub(crate) fn uploaded_by(conn: &Db, url: &str, bid: &str) -> db::Result<bool> {
    let Some(name) = url.strip_prefix(URL_PREFIX) else {
        return Ok(false);
    };
    Ok(conn
        .prepare_cached("SELECT 1 FROM kefu_uploads WHERE name = ?1 AND bid = ?2")?
        .query_row(params![name, bid], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Most orphans one sweep removes (the next sweep takes the rest).
const SWEEP_BATCH: i64 = 256;

/// Delete uploads made before `cutoff` (ms) that no message references; returns how many.
/// The row goes first, and only if still unreferenced: a message stored at the same moment
/// (on the writer, which marks the row in its transaction) either wins and keeps the file, or
/// finds the row gone.
pub(crate) fn sweep(conn: &Db, data_dir: &Path, cutoff: i64) -> db::Result<usize> {
    let names: Vec<String> = conn
        .prepare_cached(
            "SELECT name FROM kefu_uploads WHERE referenced = 0 AND created_at < ?1 LIMIT ?2",
        )?
        .query_map(params![cutoff, SWEEP_BATCH], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut n = 0;
    for name in names {
        let gone = match conn.kind() {
            Kind::Sqlite => conn
                .prepare_cached(
                    "DELETE FROM kefu_uploads
                     WHERE name = ?1 AND referenced = 0 AND created_at < ?2",
                )?
                .execute(params![name, cutoff])?,
            // The bytes go with the row, in the same statement.
            Kind::Postgres => {
                conn.prepare_cached(
                    "WITH gone AS (
                        DELETE FROM kefu_uploads
                        WHERE name = ?1 AND referenced = 0 AND created_at < ?2
                        RETURNING name
                     ), bytes AS (
                        DELETE FROM kefu_upload_bytes WHERE name IN (SELECT name FROM gone)
                     )
                     SELECT COUNT(*) FROM gone",
                )?
                .query_row(params![name, cutoff], |r| r.get::<_, i64>(0))? as usize
            }
        };
        if gone == 1 && parse_name(&name).is_some() {
            // On PostgreSQL the file is one from before the move, if any.
            match std::fs::remove_file(dir(data_dir).join(&name)) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if conn.kind() == Kind::Postgres {
                        n += 1;
                    }
                }
                Err(e) => return Err(StoreError::Io(e)),
            }
        }
    }
    Ok(n)
}

/// Whether `name` is recorded (tests).
#[cfg(test)]
fn recorded(conn: &Db, name: &str) -> bool {
    conn.query_row("SELECT 1 FROM kefu_uploads WHERE name = ?1", [name], |_| {
        Ok(())
    })
    .optional()
    .ok()
    .flatten()
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_and_validates() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some(ImageType::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageType::Jpeg));
        assert_eq!(sniff(b"GIF89a..."), Some(ImageType::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageType::Webp));
        assert_eq!(sniff(b"<svg onload=alert(1)>"), None);
        assert_eq!(sniff(b""), None);
        let h = "a".repeat(64);
        assert!(valid_url(&format!("/uploads/{h}.png")));
        assert!(!valid_url(&format!("/uploads/{h}.svg")));
        assert!(!valid_url("/uploads/../secret.key"));
        assert!(!valid_url("javascript:alert(1)"));
    }

    fn tiny_png(fill: u8) -> Vec<u8> {
        let mut p = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [
            (&b"IHDR"[..], vec![0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]),
            (b"tEXt", b"Author\0me".to_vec()),
            (b"IDAT", vec![fill; 4]),
            (b"IEND", vec![]),
        ] {
            p.extend_from_slice(&(data.len() as u32).to_be_bytes());
            p.extend_from_slice(kind);
            p.extend_from_slice(&data);
            p.extend_from_slice(&[0; 4]);
        }
        p
    }

    #[test]
    fn accept_strips_counts_quota_and_sweeps_orphans() {
        let d = std::env::temp_dir().join(format!("kefu-upload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let c = db::open(&d, crate::config::SyncMode::Normal).unwrap();
        ensure_table(&c).unwrap();
        let who = Uploader::Agent("shop".into());
        let (a, b) = (tiny_png(1), tiny_png(2));
        let s1 = accept(&c, &d, &who, &a, ImageType::Png, 1000, 1_000)
            .unwrap()
            .unwrap();
        assert!(s1.bytes < a.len(), "tEXt stripped");
        let on_disk = std::fs::read(dir(&d).join(&s1.name)).unwrap();
        assert!(!on_disk.windows(6).any(|w| w == b"Author"));
        let s2 = accept(&c, &d, &who, &b, ImageType::Png, 1000, 2_000)
            .unwrap()
            .unwrap();
        // Quota: 2 x 61 bytes used, a third would pass 120.
        match accept(&c, &d, &who, &tiny_png(3), ImageType::Png, 120, 3_000).unwrap() {
            Err(Refused::Quota(w)) => assert!(w > Duration::from_secs(86_000)),
            r => panic!("{r:?}"),
        }
        assert_eq!(
            accept(
                &c,
                &d,
                &who,
                b"\x89PNG\r\n\x1a\nxx",
                ImageType::Png,
                0,
                3_000
            )
            .unwrap()
            .err(),
            Some(Refused::BadImage(StripError::Truncated))
        );
        let v = Uploader::Visitor("shop".into(), "v_1".into());
        assert_eq!(
            accept(&c, &d, &v, &a, ImageType::Png, 0, 3_000)
                .unwrap()
                .err(),
            Some(Refused::NoConversation)
        );
        mark_referenced(&c, &format!("{URL_PREFIX}{}", s1.name)).unwrap();
        assert_eq!(
            sweep(&c, &d, 1_500).unwrap(),
            0,
            "s2 is too young, s1 is used"
        );
        assert_eq!(sweep(&c, &d, 10_000).unwrap(), 1);
        assert!(dir(&d).join(&s1.name).exists());
        assert!(!dir(&d).join(&s2.name).exists());
        assert!(recorded(&c, &s1.name) && !recorded(&c, &s2.name));
        let _ = std::fs::remove_dir_all(&d);
    }
}
