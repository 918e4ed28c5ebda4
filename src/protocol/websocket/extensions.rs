//! permessage-deflate negotiation (RFC 7692 §5, §7.1): the `Sec-WebSocket-Extensions` offers
//! of a client, the server's choice and its response header. No I/O here.
//!
//! kefu never takes over an LZ77 window between messages, in either direction: it answers every
//! accepted offer with `server_no_context_takeover` and `client_no_context_takeover` (§7.1.1
//! lets a server add both unasked). So a connection keeps no compression state at all between
//! messages, and one compressed frame serves every receiver with the same window size.

use std::fmt;

/// The extension name (§7).
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// Smallest and largest LZ77 window sizes, as base-2 logarithms (§7.1.2).
pub const MIN_WINDOW_BITS: u8 = 8;
/// Largest window (32 KiB), the default when a window parameter is absent.
pub const MAX_WINDOW_BITS: u8 = 15;

/// Why one permessage-deflate offer was declined (§7.1: the server must decline such offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferError {
    /// The header does not follow the extension grammar of RFC 6455 §9.1.
    Syntax,
    /// A parameter RFC 7692 does not define for offers.
    UnknownParam,
    /// The same parameter twice in one offer.
    DuplicateParam,
    /// A `*_no_context_takeover` parameter with a value.
    UnexpectedValue,
    /// A window size that is missing (server side) or not an integer 8..=15 without leading zeros.
    BadWindowBits,
}

impl fmt::Display for OfferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OfferError::Syntax => "malformed extension header",
            OfferError::UnknownParam => "unknown permessage-deflate parameter",
            OfferError::DuplicateParam => "duplicate permessage-deflate parameter",
            OfferError::UnexpectedValue => "no_context_takeover parameter with a value",
            OfferError::BadWindowBits => "window bits must be an integer from 8 to 15",
        })
    }
}

impl std::error::Error for OfferError {}

/// One valid permessage-deflate offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offer {
    /// `server_no_context_takeover`: the client asks us not to keep our window.
    pub server_no_context_takeover: bool,
    /// `client_no_context_takeover`: the client will not keep its window anyway.
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits=N`: the largest window our compressor may use.
    pub server_max_window_bits: Option<u8>,
    /// `client_max_window_bits[=N]`: the client can take a window limit (`Some(None)` with no
    /// value, `Some(Some(n))` when it announces its own limit).
    pub client_max_window_bits: Option<Option<u8>>,
}

/// What was agreed for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// Largest window our compressor may use (8..=15).
    pub server_window_bits: u8,
    /// Whether `server_max_window_bits` is echoed in the response (it was in the offer).
    echo_server_bits: bool,
}

impl Agreed {
    /// The `Sec-WebSocket-Extensions` value answering the accepted offer.
    pub fn response(&self) -> String {
        let mut s =
            format!("{PERMESSAGE_DEFLATE}; server_no_context_takeover; client_no_context_takeover");
        if self.echo_server_bits {
            s.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_window_bits
            ));
        }
        s
    }
}

/// Pick the first acceptable permessage-deflate offer from the `Sec-WebSocket-Extensions`
/// header values (several header lines count as one comma-separated list, RFC 7230 §3.2.2).
/// Offers of other extensions and invalid deflate offers are skipped (declined); a header that
/// does not parse at all declines everything.
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Agreed> {
    for value in values {
        let list = split_unquoted(value, b',').ok()?;
        for ext in list.into_iter().filter(|e| !e.trim().is_empty()) {
            match parse_extension(ext) {
                Ok(Some(offer)) => return Some(accept(&offer)),
                // A header that does not parse is declined whole; a bad offer only itself.
                Err(OfferError::Syntax) => return None,
                Ok(None) | Err(_) => {}
            }
        }
    }
    None
}

/// Parse one element of the extension list: `Ok(None)` for another extension, the offer if
/// it is a valid permessage-deflate one, or why it must be declined.
pub fn parse_extension(ext: &str) -> Result<Option<Offer>, OfferError> {
    let parts = split_unquoted(ext, b';')?;
    let mut it = parts.into_iter();
    let name = it.next().unwrap_or_default().trim();
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(OfferError::Syntax);
    }
    if !name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE) {
        return Ok(None);
    }
    parse_params(it).map(Some)
}

/// Our answer to a valid offer. Every offer is acceptable: our compressor honours any window
/// from 9 to 15 bits, and with a limit of 8 (which zlib's raw deflate cannot produce) we accept
/// and send every message uncompressed, which §6 allows per message. We inflate with a full
/// 15-bit window, which reads any smaller window the client picks, so `client_max_window_bits`
/// needs no answer.
pub fn accept(offer: &Offer) -> Agreed {
    Agreed {
        server_window_bits: offer.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
        echo_server_bits: offer.server_max_window_bits.is_some(),
    }
}

fn parse_params<'a>(params: impl Iterator<Item = &'a str>) -> Result<Offer, OfferError> {
    let mut offer = Offer::default();
    let mut seen = [false; 4];
    for p in params {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(param_value(v.trim())?)),
            None => (p.trim(), None),
        };
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(OfferError::Syntax);
        }
        let idx = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return Err(OfferError::UnknownParam),
        };
        if std::mem::replace(&mut seen[idx], true) {
            return Err(OfferError::DuplicateParam);
        }
        match (idx, value) {
            (0 | 1, Some(_)) => return Err(OfferError::UnexpectedValue),
            (0, None) => offer.server_no_context_takeover = true,
            (1, None) => offer.client_no_context_takeover = true,
            (2, v) => {
                offer.server_max_window_bits =
                    Some(v.and_then(window_bits).ok_or(OfferError::BadWindowBits)?);
            }
            (_, None) => offer.client_max_window_bits = Some(None),
            (_, Some(v)) => {
                offer.client_max_window_bits =
                    Some(Some(window_bits(v).ok_or(OfferError::BadWindowBits)?));
            }
        }
    }
    Ok(offer)
}

/// §7.1.2: a decimal integer 8..=15 without leading zeros.
fn window_bits(v: &str) -> Option<u8> {
    match v.as_bytes() {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// A parameter value: a token, or a quoted-string whose content is then taken as the value
/// (§7.1: quoted values must conform to the same rules once unquoted).
fn param_value(v: &str) -> Result<&str, OfferError> {
    if let Some(inner) = v.strip_prefix('"') {
        let inner = inner.strip_suffix('"').ok_or(OfferError::Syntax)?;
        // The only values defined are digits: an escape can never make one valid.
        if inner.bytes().any(|b| b == b'\\' || b == b'"') {
            return Err(OfferError::BadWindowBits);
        }
        return Ok(inner);
    }
    if v.is_empty() || !v.bytes().all(is_tchar) {
        return Err(OfferError::Syntax);
    }
    Ok(v)
}

/// RFC 7230 §3.2.6 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Split on `sep` outside quoted strings; an unterminated quote is a syntax error.
fn split_unquoted(s: &str, sep: u8) -> Result<Vec<&str>, OfferError> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    if quoted {
        return Err(OfferError::Syntax);
    }
    out.push(&s[start..]);
    Ok(out)
}

#[cfg(test)]
#[path = "extensions_tests.rs"]
mod tests;
