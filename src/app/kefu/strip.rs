//! Image metadata removal for uploads: camera EXIF (GPS position, device, time), XMP, text
//! comments. Pure functions on bytes, no decoding of pixels. What stays is what rendering
//! needs: for JPEG the JFIF header (APP0), an ICC colour profile (APP2 `ICC_PROFILE`) and the
//! Adobe marker (APP14, it says how CMYK data is encoded); every other APPn (1..15) and COM
//! segment goes. For PNG the `tEXt`, `zTXt`, `iTXt`, `eXIf` and `tIME` chunks go, and for
//! WebP the `EXIF` and `XMP ` chunks (with their VP8X flags). GIF is stored as sent.

use super::upload::ImageType;

/// Why an image could not be parsed: the upload is refused, never stored half-cleaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StripError {
    /// The data ends inside a segment or chunk.
    Truncated,
    /// A JPEG segment does not start with a marker.
    BadMarker,
    /// A length field is impossible.
    BadLength,
    /// A PNG chunk type is not four ASCII letters, or the first chunk is not IHDR.
    BadChunk,
    /// No image data (JPEG ends before its scan).
    NoImage,
}

impl std::fmt::Display for StripError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StripError::Truncated => "image data is truncated",
            StripError::BadMarker => "bad JPEG marker",
            StripError::BadLength => "bad segment length",
            StripError::BadChunk => "bad PNG chunk",
            StripError::NoImage => "no image data",
        })
    }
}

/// `b` (of type `t`, already sniffed) without its metadata.
pub(crate) fn strip(t: ImageType, b: &[u8]) -> Result<Vec<u8>, StripError> {
    match t {
        ImageType::Jpeg => jpeg(b),
        ImageType::Png => png(b),
        ImageType::Webp => webp(b),
        ImageType::Gif => Ok(b.to_vec()),
    }
}

/// A JPEG without APP1..APP15 (except ICC and Adobe) and COM segments. Everything from the
/// first scan (SOS) on is copied as is: metadata segments do not follow image data in files
/// cameras and editors write.
pub(crate) fn jpeg(b: &[u8]) -> Result<Vec<u8>, StripError> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err(StripError::BadMarker);
    }
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..2]);
    let mut i = 2;
    loop {
        if b.get(i) != Some(&0xFF) {
            return Err(if i >= b.len() {
                StripError::Truncated
            } else {
                StripError::BadMarker
            });
        }
        // Any number of 0xFF fill bytes may precede a marker.
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *b.get(i).ok_or(StripError::Truncated)?;
        i += 1;
        match marker {
            0xD9 => return Err(StripError::NoImage),
            0xD8 | 0x00 => return Err(StripError::BadMarker),
            // Standalone markers: no length.
            0x01 | 0xD0..=0xD7 => {
                out.extend_from_slice(&[0xFF, marker]);
                continue;
            }
            _ => {}
        }
        let len_bytes = b.get(i..i + 2).ok_or(StripError::Truncated)?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len < 2 {
            return Err(StripError::BadLength);
        }
        let seg = b.get(i..i + len).ok_or(StripError::Truncated)?;
        let data = &seg[2..];
        let keep = match marker {
            0xE2 => data.starts_with(b"ICC_PROFILE\0"),
            0xEE => data.starts_with(b"Adobe"),
            0xE1..=0xEF | 0xFE => false,
            _ => true,
        };
        if marker == 0xDA {
            out.extend_from_slice(&[0xFF, marker]);
            out.extend_from_slice(&b[i..]);
            return Ok(out);
        }
        if keep {
            out.extend_from_slice(&[0xFF, marker]);
            out.extend_from_slice(seg);
        }
        i += len;
    }
}

/// PNG chunks that carry text or camera metadata.
const PNG_DROP: [&[u8; 4]; 5] = [b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"];

/// A PNG without its text, EXIF and time chunks; anything after IEND is dropped too.
pub(crate) fn png(b: &[u8]) -> Result<Vec<u8>, StripError> {
    const SIG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !b.starts_with(SIG) {
        return Err(StripError::BadChunk);
    }
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(SIG);
    let mut i = SIG.len();
    let mut first = true;
    loop {
        let head = b.get(i..i + 8).ok_or(StripError::Truncated)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if len > 0x7FFF_FFFF {
            return Err(StripError::BadLength);
        }
        let kind = &head[4..8];
        if !kind.iter().all(u8::is_ascii_alphabetic) || (first && kind != b"IHDR") {
            return Err(StripError::BadChunk);
        }
        first = false;
        // Length, type, data, CRC.
        let end = (i + 12)
            .checked_add(len as usize)
            .ok_or(StripError::BadLength)?;
        let chunk = b.get(i..end).ok_or(StripError::Truncated)?;
        if !PNG_DROP.iter().any(|d| kind == *d) {
            out.extend_from_slice(chunk);
        }
        if kind == b"IEND" {
            return Ok(out);
        }
        i = end;
    }
}

/// A WebP without its EXIF and XMP chunks (the VP8X flags announcing them cleared).
pub(crate) fn webp(b: &[u8]) -> Result<Vec<u8>, StripError> {
    if b.len() < 12 || &b[..4] != b"RIFF" || &b[8..12] != b"WEBP" {
        return Err(StripError::BadChunk);
    }
    let riff = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    let body = b.get(12..8 + riff).ok_or(StripError::Truncated)?;
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..12]);
    let mut i = 0;
    while i < body.len() {
        let head = body.get(i..i + 8).ok_or(StripError::Truncated)?;
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        // Chunks are padded to an even size.
        let end = (i + 8)
            .checked_add(len + (len & 1))
            .ok_or(StripError::BadLength)?;
        let chunk = body.get(i..end).ok_or(StripError::Truncated)?;
        match &head[..4] {
            b"EXIF" | b"XMP " => {}
            b"VP8X" if len >= 1 => {
                let at = out.len() + 8;
                out.extend_from_slice(chunk);
                // Bit 3: EXIF present, bit 2: XMP present.
                out[at] &= !0b0000_1100;
            }
            _ => out.extend_from_slice(chunk),
        }
        i = end;
    }
    let size = u32::try_from(out.len() - 8).map_err(|_| StripError::BadLength)?;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(marker: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, marker];
        v.extend_from_slice(&((data.len() + 2) as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn sample_jpeg() -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        j.extend(seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        j.extend(seg(0xE1, b"Exif\0\0GPS 48.85N 2.35E Canon"));
        j.extend(seg(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>"));
        j.extend(seg(0xE2, b"ICC_PROFILE\0\x01\x01profile"));
        j.extend(seg(0xED, b"Photoshop 3.0\0IPTC author"));
        j.extend(seg(0xEE, b"Adobe\0\x64\0\0\0\0\x01"));
        j.extend(seg(0xFE, b"secret comment"));
        j.extend(seg(0xDB, &[0u8; 65]));
        j.extend(seg(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
        j.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD9]);
        j
    }

    fn contains(h: &[u8], n: &[u8]) -> bool {
        h.windows(n.len()).any(|w| w == n)
    }

    #[test]
    fn jpeg_keeps_jfif_icc_adobe_and_scan_drops_the_rest() {
        let j = sample_jpeg();
        let s = jpeg(&j).unwrap();
        for gone in [&b"Exif"[..], b"GPS", b"xmpmeta", b"IPTC", b"secret comment"] {
            assert!(!contains(&s, gone), "{}", String::from_utf8_lossy(gone));
        }
        for kept in [&b"JFIF"[..], b"ICC_PROFILE", b"Adobe"] {
            assert!(contains(&s, kept));
        }
        assert!(s.ends_with(&[
            0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 0x3F, 0, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD9
        ]));
        assert_eq!(jpeg(&s).unwrap(), s, "idempotent");
    }

    #[test]
    fn jpeg_fill_bytes_and_errors() {
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xFF];
        j.extend(&seg(0xE1, b"Exif\0\0x")[1..]);
        j.extend(seg(0xDA, &[0]));
        assert!(!contains(&jpeg(&j).unwrap(), b"Exif"));
        assert_eq!(jpeg(b"\xFF\xD8"), Err(StripError::Truncated));
        assert_eq!(jpeg(b"\xFF\xD8\x00"), Err(StripError::BadMarker));
        assert_eq!(jpeg(b"\xFF\xD8\xFF\xE1\x00"), Err(StripError::Truncated));
        assert_eq!(
            jpeg(b"\xFF\xD8\xFF\xE1\x00\x01"),
            Err(StripError::BadLength)
        );
        assert_eq!(
            jpeg(b"\xFF\xD8\xFF\xE1\x00\x09ab"),
            Err(StripError::Truncated)
        );
        assert_eq!(jpeg(b"\xFF\xD8\xFF\xD9"), Err(StripError::NoImage));
        assert_eq!(jpeg(b"GIF89a"), Err(StripError::BadMarker));
    }

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut v = (data.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(data);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v
    }

    fn sample_png() -> Vec<u8> {
        let mut p = b"\x89PNG\r\n\x1a\n".to_vec();
        p.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
        p.extend(chunk(b"tEXt", b"Author\0Someone"));
        p.extend(chunk(b"iCCP", b"icc\0\0zz"));
        p.extend(chunk(b"zTXt", b"Comment\0\0zz"));
        p.extend(chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x/>"));
        p.extend(chunk(b"eXIf", b"MM\0*GPS"));
        p.extend(chunk(b"tIME", &[7, 0xE8, 1, 1, 0, 0, 0]));
        p.extend(chunk(b"IDAT", b"pixels"));
        p.extend(chunk(b"IEND", b""));
        p.extend_from_slice(b"trailing junk");
        p
    }

    #[test]
    fn png_drops_text_exif_time_and_trailer() {
        let s = png(&sample_png()).unwrap();
        for gone in [
            &b"Author"[..],
            b"Comment",
            b"xmp",
            b"GPS",
            b"tIME",
            b"trailing",
        ] {
            assert!(!contains(&s, gone), "{}", String::from_utf8_lossy(gone));
        }
        for kept in [&b"IHDR"[..], b"iCCP", b"pixels", b"IEND"] {
            assert!(contains(&s, kept));
        }
        assert_eq!(png(&s).unwrap(), s);
    }

    #[test]
    fn png_errors() {
        let sig = b"\x89PNG\r\n\x1a\n".to_vec();
        assert_eq!(png(&sig), Err(StripError::Truncated));
        let mut p = sig.clone();
        p.extend(chunk(b"IDAT", b"x"));
        assert_eq!(png(&p), Err(StripError::BadChunk), "IHDR first");
        let mut p = sig.clone();
        p.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        p.extend_from_slice(b"IHDR");
        assert_eq!(png(&p), Err(StripError::BadLength));
        let mut p = sig.clone();
        p.extend(chunk(b"IHDR", &[0; 13]));
        assert_eq!(png(&p), Err(StripError::Truncated), "no IEND");
        let mut p = sig;
        p.extend(chunk(b"IH\0R", &[0; 13]));
        assert_eq!(png(&p), Err(StripError::BadChunk));
    }

    #[test]
    fn webp_drops_exif_and_xmp_and_fixes_sizes() {
        let mut body = b"WEBP".to_vec();
        body.extend_from_slice(b"VP8X");
        body.extend_from_slice(&10u32.to_le_bytes());
        body.extend_from_slice(&[0b0000_1100, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(b"VP8L");
        body.extend_from_slice(&3u32.to_le_bytes());
        body.extend_from_slice(b"abc\0");
        body.extend_from_slice(b"EXIF");
        body.extend_from_slice(&5u32.to_le_bytes());
        body.extend_from_slice(b"GPS!!\0");
        body.extend_from_slice(b"XMP ");
        body.extend_from_slice(&4u32.to_le_bytes());
        body.extend_from_slice(b"<x/>");
        let mut w = b"RIFF".to_vec();
        w.extend_from_slice(&(body.len() as u32).to_le_bytes());
        w.extend(body);
        let s = webp(&w).unwrap();
        assert!(!contains(&s, b"GPS") && !contains(&s, b"<x/>"));
        assert!(contains(&s, b"abc"));
        assert_eq!(s[20], 0, "flags cleared");
        assert_eq!(
            u32::from_le_bytes([s[4], s[5], s[6], s[7]]) as usize,
            s.len() - 8
        );
        assert_eq!(webp(&w[..w.len() - 3]), Err(StripError::Truncated));
    }

    /// Every prefix and a few thousand corruptions of valid files: an error or an image, never
    /// a panic.
    #[test]
    fn malformed_input_never_panics() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (t, good) in [
            (ImageType::Jpeg, sample_jpeg()),
            (ImageType::Png, sample_png()),
        ] {
            for n in 0..good.len() {
                let _ = strip(t, &good[..n]);
            }
            for _ in 0..3000 {
                let mut b = good.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                let _ = strip(t, &b);
            }
        }
        for _ in 0..3000 {
            let mut b = b"RIFF\0\0\0\0WEBP".to_vec();
            b.extend((0..next() % 64).map(|_| next() as u8));
            let n = (next() % 80) as u32;
            b[4..8].copy_from_slice(&n.to_le_bytes());
            let _ = webp(&b);
        }
    }
}
