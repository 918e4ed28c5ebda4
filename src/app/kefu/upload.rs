//! Image uploads: type decided by magic bytes (never by the client's Content-Type or name),
//! size-limited, stored content-addressed under `<data_dir>/uploads`, served back by URL.
//! File I/O runs on the plain store thread, never on the loop.

use crate::protocol::http::response::Response;
use crate::store::tenancy::hex;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

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

/// Store `body` (already checked) and return its file name. Content-addressed: the same
/// image uploaded twice is stored once. Written under a temporary name and renamed, so a
/// reader never sees half a file.
pub(crate) fn save(data_dir: &Path, body: &[u8], t: ImageType) -> std::io::Result<String> {
    let name = format!("{}.{}", hex(&Sha256::digest(body)), t.ext());
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

/// The response serving a stored upload (404 if absent).
pub(crate) fn serve(data_dir: &Path, name: &str) -> Response {
    let Some((_, t)) = parse_name(name) else {
        return Response::error(404);
    };
    match std::fs::read(dir(data_dir).join(name)) {
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
                ("Access-Control-Allow-Origin".into(), "*".into()),
            ],
            body,
        },
        Err(_) => Response::error(404),
    }
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
}
