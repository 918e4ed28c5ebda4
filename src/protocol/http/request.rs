//! HTTP/1.1 request parsing on top of `httparse`, with size limits and small accessors.
//!
//! No I/O here: [`parse_request`] looks at the front of a caller-owned buffer.

use std::fmt;

/// Most headers accepted in one request head.
pub const MAX_HEADERS: usize = 64;

/// Size limits applied while parsing a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest request head (request line + headers + blank line) in bytes.
    pub max_header_size: usize,
    /// Largest accepted `Content-Length`.
    pub max_body_size: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_header_size: 16 * 1024,
            max_body_size: 1024 * 1024,
        }
    }
}

/// A parsed HTTP/1.x request with its complete body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Method as sent, e.g. `GET`.
    pub method: String,
    /// Raw (not percent-decoded) path, without the query string.
    pub path: String,
    /// Raw query string without the leading `?` (empty if none).
    pub query: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// Headers in arrival order; names keep their original case.
    pub headers: Vec<(String, String)>,
    /// Body bytes (exactly `Content-Length` of them).
    pub body: Vec<u8>,
}

impl Request {
    /// First header value named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any `name` header lists `token` among its comma-separated values (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The client address as seen by the outermost of `hops` trusted proxies: the `hops`-th
    /// `X-Forwarded-For` entry from the right, over every such header in order. Each proxy
    /// appends the address it received the request from, so entries left of that one were
    /// written by the client and prove nothing. `None` if there are fewer entries than hops or
    /// that entry is not an address (`1.2.3.4`, `::1`, `1.2.3.4:80`, `[::1]:80`).
    pub fn forwarded_client(&self, hops: usize) -> Option<std::net::IpAddr> {
        let entries: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .collect();
        let i = entries.len().checked_sub(hops.max(1))?;
        let e = entries[i];
        e.parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| e.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
    }

    /// First query parameter `key`, percent-decoded with `+` as space.
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k) == key).then(|| percent_decode(v))
            })
    }

    /// All cookies from every `Cookie` header, as raw `(name, value)` pairs.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                let k = k.trim();
                if k.is_empty() {
                    return None;
                }
                // RFC 6265 §4.1.1 allows the value to be wrapped in double quotes.
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or(v);
                Some((k.to_string(), v.to_string()))
            })
            .collect()
    }

    /// Whether the connection stays open after the response (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        if self.minor_version >= 1 {
            !self.header_has_token("connection", "close")
        } else {
            self.header_has_token("connection", "keep-alive")
        }
    }
}

/// Decode `%XX` escapes and `+` (as space) from a query component; invalid UTF-8 is replaced.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&c| hex_val(c));
                let lo = bytes.get(i + 2).and_then(|&c| hex_val(c));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                } else {
                    // A stray `%` is kept literally, as browsers do.
                    out.push(b'%');
                    i += 1;
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Why a request was rejected; [`HttpError::status`] gives the response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Request head larger than `max_header_size` (431).
    HeaderTooLarge,
    /// More than [`MAX_HEADERS`] headers (431).
    TooManyHeaders,
    /// `Content-Length` above `max_body_size` (413).
    BodyTooLarge,
    /// Syntactically invalid request (400).
    Malformed,
    /// Unparsable or conflicting `Content-Length` (400).
    BadContentLength,
    /// `Transfer-Encoding` bodies are not supported; a `Content-Length` is required (411).
    ChunkedUnsupported,
    /// Not HTTP/1.0 or HTTP/1.1 (505).
    UnsupportedVersion,
}

impl HttpError {
    /// HTTP status code to answer with.
    pub fn status(self) -> u16 {
        match self {
            HttpError::HeaderTooLarge | HttpError::TooManyHeaders => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::Malformed | HttpError::BadContentLength => 400,
            HttpError::ChunkedUnsupported => 411,
            HttpError::UnsupportedVersion => 505,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            HttpError::HeaderTooLarge => "request header too large",
            HttpError::TooManyHeaders => "too many request headers",
            HttpError::BodyTooLarge => "request body too large",
            HttpError::Malformed => "malformed request",
            HttpError::BadContentLength => "bad Content-Length",
            HttpError::ChunkedUnsupported => {
                "Transfer-Encoding not supported, Content-Length required"
            }
            HttpError::UnsupportedVersion => "unsupported HTTP version",
        };
        f.write_str(s)
    }
}

impl std::error::Error for HttpError {}

/// Parse one request from the front of `buf`.
///
/// `Ok(None)` means incomplete. Fails with `HeaderTooLarge` once `max_header_size` bytes hold no
/// complete head, and with `BodyTooLarge` as soon as the head declares too large a body.
/// On success returns the request and the number of bytes it occupied.
pub fn parse_request(
    buf: &[u8],
    limits: &RequestLimits,
) -> Result<Option<(Request, usize)>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limits.max_header_size {
                return Err(HttpError::HeaderTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(HttpError::UnsupportedVersion),
        Err(_) => return Err(HttpError::Malformed),
    };
    if head_len > limits.max_header_size {
        return Err(HttpError::HeaderTooLarge);
    }
    let method = parsed.method.ok_or(HttpError::Malformed)?.to_string();
    let target = parsed.path.ok_or(HttpError::Malformed)?;
    let minor_version = parsed.version.ok_or(HttpError::Malformed)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let mut headers = Vec::with_capacity(parsed.headers.len());
    let mut content_length: Option<u64> = None;
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // RFC 9112 §6.1: we cannot frame a chunked body, so refuse rather than misread it.
            return Err(HttpError::ChunkedUnsupported);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            // RFC 9112 §6.3: differing repeated lengths are unrecoverable (smuggling risk).
            if content_length.is_some_and(|prev| prev != n) {
                return Err(HttpError::BadContentLength);
            }
            content_length = Some(n);
        }
        // obs-text is legal in values; keep it readable rather than failing.
        let value = String::from_utf8_lossy(h.value).into_owned();
        headers.push((h.name.to_string(), value));
    }

    let body_len = content_length.unwrap_or(0);
    if body_len > limits.max_body_size as u64 {
        return Err(HttpError::BodyTooLarge);
    }
    // Fits in usize: bounded by max_body_size.
    let body_len = usize::try_from(body_len).map_err(|_| HttpError::BodyTooLarge)?;
    let total = head_len
        .checked_add(body_len)
        .ok_or(HttpError::BodyTooLarge)?;
    let Some(body) = buf.get(head_len..total) else {
        return Ok(None);
    };
    let req = Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        minor_version,
        headers,
        body: body.to_vec(),
    };
    Ok(Some((req, total)))
}

/// Strict decimal `Content-Length` (RFC 9110 §8.6: `1*DIGIT`).
fn parse_content_length(v: &[u8]) -> Result<u64, HttpError> {
    let v = v.trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadContentLength);
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(u64::from(d - b'0')))
            .ok_or(HttpError::BadContentLength)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_client_is_counted_from_the_right() {
        let req = |hs: &[&str]| Request {
            headers: hs
                .iter()
                .map(|v| ("X-Forwarded-For".to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        };
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        // The client wrote "6.6.6.6"; the proxy appended the address it saw.
        let r = req(&["6.6.6.6, 203.0.113.7"]);
        assert_eq!(r.forwarded_client(1), ip("203.0.113.7"));
        assert_eq!(r.forwarded_client(2), ip("6.6.6.6"));
        assert_eq!(r.forwarded_client(3), None);
        // Several headers are one list, in order.
        let r = req(&["6.6.6.6", "198.51.100.1, [2001:db8::1]:443"]);
        assert_eq!(r.forwarded_client(1), ip("2001:db8::1"));
        assert_eq!(r.forwarded_client(2), ip("198.51.100.1"));
        assert_eq!(req(&["6.6.6.6, junk"]).forwarded_client(1), None);
        assert_eq!(req(&[]).forwarded_client(1), None);
    }
    use proptest::prelude::*;

    const LIM: RequestLimits = RequestLimits {
        max_header_size: 1024,
        max_body_size: 64,
    };

    fn parse_ok(raw: &str) -> (Request, usize) {
        parse_request(raw.as_bytes(), &LIM).unwrap().unwrap()
    }

    #[test]
    fn parses_get_with_query() {
        let raw = "GET /chat/room?id=7&name=J%C3%BCrgen+K&flag HTTP/1.1\r\nHost: x\r\nCookie: a=1; b=\"two\"\r\nCookie: c=3\r\n\r\nextra";
        let (r, n) = parse_ok(raw);
        assert_eq!(n, raw.len() - 5);
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/chat/room");
        assert_eq!(r.query, "id=7&name=J%C3%BCrgen+K&flag");
        assert_eq!(r.minor_version, 1);
        assert_eq!(r.header("HOST"), Some("x"));
        assert_eq!(r.query_param("id").as_deref(), Some("7"));
        assert_eq!(r.query_param("name").as_deref(), Some("Jürgen K"));
        assert_eq!(r.query_param("flag").as_deref(), Some(""));
        assert_eq!(r.query_param("nope"), None);
        assert_eq!(
            r.cookies(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two".into()),
                ("c".into(), "3".into())
            ]
        );
        assert!(r.keep_alive());
        assert!(r.body.is_empty());
    }

    #[test]
    fn body_with_content_length() {
        let raw = "POST /api HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            parse_request(&raw.as_bytes()[..raw.len() - 1], &LIM),
            Ok(None)
        );
        let (r, n) = parse_ok(raw);
        assert_eq!(n, raw.len());
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn keep_alive_rules() {
        let cases = [
            ("HTTP/1.1", "", true),
            ("HTTP/1.1", "Connection: close\r\n", false),
            ("HTTP/1.1", "Connection: Upgrade, CLOSE\r\n", false),
            ("HTTP/1.0", "", false),
            ("HTTP/1.0", "Connection: Keep-Alive\r\n", true),
        ];
        for (ver, hdr, want) in cases {
            let (r, _) = parse_ok(&format!("GET / {ver}\r\n{hdr}\r\n"));
            assert_eq!(r.keep_alive(), want, "{ver} {hdr:?}");
        }
    }

    #[test]
    fn header_tokens() {
        let (r, _) = parse_ok("GET / HTTP/1.1\r\nConnection: keep-alive\r\nconnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert!(r.header_has_token("Connection", "upgrade"));
        assert!(r.header_has_token("connection", "keep-alive"));
        assert!(!r.header_has_token("connection", "close"));
        assert!(r.header_has_token("upgrade", "WebSocket"));
    }

    #[test]
    fn errors_and_statuses() {
        let big_head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(65));
        let cases: Vec<(String, HttpError, u16)> = vec![
            (big_head.clone(), HttpError::HeaderTooLarge, 431),
            (big_head[..1500].to_string(), HttpError::HeaderTooLarge, 431),
            (many, HttpError::TooManyHeaders, 431),
            (
                "POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n".into(),
                HttpError::BodyTooLarge,
                413,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n".into(),
                HttpError::BadContentLength,
                400,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n".into(),
                HttpError::BadContentLength,
                400,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".into(),
                HttpError::BadContentLength,
                400,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
                HttpError::ChunkedUnsupported,
                411,
            ),
            (
                "GET / HTTP/2.0\r\n\r\n".into(),
                HttpError::UnsupportedVersion,
                505,
            ),
            ("GET\0 / HTTP/1.1\r\n\r\n".into(), HttpError::Malformed, 400),
            (
                "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n".into(),
                HttpError::Malformed,
                400,
            ),
        ];
        for (raw, want, status) in cases {
            assert_eq!(parse_request(raw.as_bytes(), &LIM), Err(want), "{raw:?}");
            assert_eq!(want.status(), status);
        }
    }

    #[test]
    fn same_repeated_content_length_is_fine() {
        let (r, _) =
            parse_ok("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(r.body, b"ok");
    }

    #[test]
    fn percent_decode_edge_cases() {
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        assert_eq!(percent_decode("a+b%20c"), "a b c");
    }

    /// Feed `chunks` like the worker does and collect parsed requests or the first error.
    fn feed(chunks: &[&[u8]]) -> Result<Vec<Request>, HttpError> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            let mut pos = 0;
            while let Some((r, n)) = parse_request(&buf[pos..], &LIM)? {
                out.push(r);
                pos += n;
            }
            buf.drain(..pos);
        }
        Ok(out)
    }

    proptest! {
        #[test]
        fn pipelined_requests_split_anywhere(
            reqs in proptest::collection::vec(("[a-z/]{1,12}", "[a-z=&%]{0,10}", proptest::collection::vec(any::<u8>(), 0..70)), 1..5),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut stream = Vec::new();
            for (path, q, body) in &reqs {
                stream.extend_from_slice(format!("POST /{path}?{q} HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
                stream.extend_from_slice(body);
            }
            let whole = feed(&[&stream]);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            points.extend([0, stream.len()]);
            points.sort_unstable();
            let chunks: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
            prop_assert_eq!(&whole, &feed(&chunks));
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            prop_assert_eq!(&whole, &feed(&bytes));
            if reqs.iter().all(|r| r.2.len() <= 64) {
                let got = whole.unwrap();
                prop_assert_eq!(got.len(), reqs.len());
                for (g, r) in got.iter().zip(&reqs) {
                    prop_assert_eq!(&g.body, &r.2);
                    prop_assert_eq!(&g.query, &r.1);
                }
            } else {
                prop_assert_eq!(whole, Err(HttpError::BodyTooLarge));
            }
        }
    }
}
