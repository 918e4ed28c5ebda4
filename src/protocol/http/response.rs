//! HTTP/1.1 response building and serialization. No I/O here: bytes are appended to a `Vec`.

/// An HTTP response; `Content-Length` and `Connection` are added by [`Response::write_to`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Extra headers in the order they are written.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// Empty response with `status`.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Builder: append header `k: v`.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: &str) -> Self {
        Self::with_body(
            status,
            "text/plain; charset=utf-8",
            body.as_bytes().to_vec(),
        )
    }

    /// `application/json` response.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::with_body(status, "application/json", body.to_string().into_bytes())
    }

    /// `text/html; charset=utf-8` response.
    pub fn html(status: u16, body: &str) -> Self {
        Self::with_body(status, "text/html; charset=utf-8", body.as_bytes().to_vec())
    }

    /// Small plain-text error page: `"<status> <reason>\n"`.
    pub fn error(status: u16) -> Self {
        Self::text(status, &format!("{} {}\n", status, reason(status)))
    }

    fn with_body(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body,
        }
    }

    /// Serialize with `Content-Length` (Date omitted) and `Connection: keep-alive|close`.
    ///
    /// Caller-set `Content-Length`/`Connection` headers are dropped so framing cannot disagree
    /// with the body; CR/LF in header names or values are removed (response splitting).
    pub fn write_to(&self, out: &mut Vec<u8>, keep_alive: bool) {
        out.reserve(128 + self.body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\n");
        for (k, v) in &self.headers {
            if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("connection") {
                continue;
            }
            push_clean(out, k);
            out.extend_from_slice(b": ");
            push_clean(out, v);
            out.extend_from_slice(b"\r\n");
        }
        // RFC 9110 §8.6: no Content-Length on 1xx or 204; a 304 would describe another body.
        if !(self.status < 200 || self.status == 204 || self.status == 304) {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(self.body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(if keep_alive {
            b"Connection: keep-alive\r\n\r\n".as_slice()
        } else {
            b"Connection: close\r\n\r\n".as_slice()
        });
        out.extend_from_slice(&self.body);
    }
}

fn push_clean(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(|&b| b != b'\r' && b != b'\n'));
}

/// Reason phrase for `status` (`"Unknown"` if unlisted).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ser(r: &Response, ka: bool) -> String {
        let mut out = Vec::new();
        r.write_to(&mut out, ka);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_response() {
        assert_eq!(
            ser(&Response::text(200, "hi"), true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi"
        );
    }

    #[test]
    fn json_and_html() {
        let s = ser(
            &Response::json(201, &serde_json::json!({"ok": true})),
            false,
        );
        assert!(s.starts_with("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"));
        assert!(s.ends_with("Connection: close\r\n\r\n{\"ok\":true}"));
        let s = ser(&Response::html(200, "<p>x</p>"), true);
        assert!(s.contains("text/html; charset=utf-8"));
        assert!(s.contains("Content-Length: 8\r\n"));
    }

    #[test]
    fn error_and_header_sanitizing() {
        let r = Response::error(404)
            .header("X-A", "b\r\nSet-Cookie: evil")
            .header("content-length", "999")
            .header("Connection", "upgrade");
        let s = ser(&r, false);
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(s.contains("X-A: bSet-Cookie: evil\r\n"));
        assert!(!s.contains("999"));
        assert!(!s.contains("upgrade"));
        assert!(s.ends_with("Content-Length: 14\r\nConnection: close\r\n\r\n404 Not Found\n"));
    }

    #[test]
    fn no_content_length_on_204() {
        let s = ser(&Response::new(204), true);
        assert_eq!(
            s,
            "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(reason(799), "Unknown");
    }
}
