//! The outbound side of webhooks: endpoint URLs, the address check that keeps kefu from
//! being turned against its own network (SSRF), the signature, and one blocking HTTP/1.1
//! POST, plain or over TLS (rustls, `tls/client.rs`), with timeouts and a bounded read of
//! the answer. Runs on the delivery threads only.

use crate::store::tenancy::hex;
use hmac::{Hmac, KeyInit, Mac};
use rustls::pki_types::ServerName;
use sha2::Sha256;
use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most bytes of an endpoint's answer read (its status line is all that counts).
const MAX_ANSWER: usize = 8 * 1024;

/// How an endpoint is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// Plain HTTP (`http://`, port 80 by default).
    Http,
    /// HTTP over TLS (`https://`, port 443 by default), the certificate verified.
    Https,
}

/// A parsed endpoint URL (`http[s]://host[:port]/path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host name or address literal (brackets removed).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Why a delivery (or a registration) failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The URL is not `http[s]://host[:port]/path` of printable ASCII.
    BadUrl(&'static str),
    /// The host name did not resolve.
    Resolve(std::io::Error),
    /// The host resolves to an address kefu does not send to (loopback, private, ...).
    Forbidden(IpAddr),
    /// Connecting, writing or reading failed (timeouts included).
    Io(std::io::Error),
    /// The TLS handshake or a TLS record failed (an untrusted or wrong certificate, ...).
    Tls(rustls::Error),
    /// The answer did not start with an HTTP status line.
    BadAnswer,
    /// The endpoint answered with a status outside 2xx.
    Status(u16),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::BadUrl(m) => write!(f, "bad url: {m}"),
            SendError::Resolve(e) => write!(f, "cannot resolve host: {e}"),
            SendError::Forbidden(ip) => write!(
                f,
                "refused: {ip} is a loopback, private or link-local address (webhook_allow_private)"
            ),
            SendError::Io(e) => write!(f, "connection: {e}"),
            SendError::Tls(e) => write!(f, "tls: {e}"),
            SendError::BadAnswer => f.write_str("not an HTTP answer"),
            SendError::Status(s) => write!(f, "HTTP {s}"),
        }
    }
}

/// Parse an endpoint URL. Only `http://` and `https://`; no user info; every byte printable
/// ASCII, so nothing from the URL can break the request's header lines.
pub(crate) fn parse(url: &str) -> Result<Url, SendError> {
    if url.len() > crate::store::webhooks::MAX_URL {
        return Err(SendError::BadUrl("longer than 512 bytes"));
    }
    if !url.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(SendError::BadUrl(
            "printable ASCII only (percent-encode the rest)",
        ));
    }
    let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else {
        return Err(SendError::BadUrl("must start with http:// or https://"));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if path.contains('#') {
        return Err(SendError::BadUrl("no fragment"));
    }
    if authority.contains('@') {
        return Err(SendError::BadUrl("no user info"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or(SendError::BadUrl("bad [address]"))?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| SendError::BadUrl("bad [address]"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match (port, scheme) {
        (None, Scheme::Http) => 80,
        (None, Scheme::Https) => 443,
        (Some(p), _) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(SendError::BadUrl("bad port")),
        },
    };
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && (host.parse::<IpAddr>().is_ok()
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !name_ok {
        return Err(SendError::BadUrl("bad host"));
    }
    Ok(Url {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        path,
    })
}

/// Whether kefu may send to `ip` without `webhook_allow_private`: not loopback, private,
/// link-local, shared (CGNAT), unspecified, broadcast, multicast or documentation ranges,
/// IPv4-mapped IPv6 judged as its IPv4 address.
pub(crate) fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0xdb8)
                || (s[0] == 0x64 && s[1] == 0xff9b))
        }
    }
}

/// Most addresses of one host a delivery tries (each bounded by the connect timeout).
const MAX_ADDRS: usize = 4;

/// Resolve `url`'s host and pick the addresses to connect to, in the resolver's order (at
/// least one, at most [`MAX_ADDRS`]): every address it resolves to must be allowed (one bad
/// record refuses the lot), and the connection goes to a checked address, so a second
/// lookup cannot swap in another (DNS rebinding). More than one, because a name such as
/// `localhost` often lists `::1` first while the endpoint listens on IPv4 only.
pub(crate) fn resolve(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, SendError> {
    let mut addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(SendError::Resolve)?
        .collect();
    if addrs.is_empty() {
        return Err(SendError::Resolve(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address",
        )));
    }
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| !public(a.ip())) {
            return Err(SendError::Forbidden(bad.ip()));
        }
    }
    addrs.truncate(MAX_ADDRS);
    Ok(addrs)
}

/// A connection to the first of `addrs` that accepts one (the last error if none does).
fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, SendError> {
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(SendError::Io(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
    })))
}

/// `v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>`: what `X-Kefu-Signature` carries.
pub(crate) fn signature(secret: &str, ts: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex(&mac.finalize().into_bytes()))
}

/// One signed event to POST.
pub(crate) struct Delivery<'a> {
    /// Endpoint.
    pub url: &'a Url,
    /// Signing secret.
    pub secret: &'a str,
    /// Event name (`X-Kefu-Event`).
    pub event: &'a str,
    /// Queue row id (`X-Kefu-Delivery`: the same on every retry, for de-duplication).
    pub id: i64,
    /// Seconds since the epoch (`X-Kefu-Timestamp`, signed).
    pub ts: i64,
    /// JSON body.
    pub body: &'a [u8],
}

/// POST `d` to the first of `addrs` that takes a connection; Ok with the status if it is 2xx. An `https` endpoint's certificate
/// must chain to a root of `tls` and name the URL's host (or address). `timeout` bounds the
/// connect, each write, and the whole wait for the answer's status line (so an endpoint that
/// drips bytes cannot hold the thread longer).
pub(crate) fn post(
    d: &Delivery<'_>,
    addrs: &[SocketAddr],
    timeout: Duration,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<u16, SendError> {
    let s = connect(addrs, timeout)?;
    s.set_read_timeout(Some(timeout)).map_err(SendError::Io)?;
    s.set_write_timeout(Some(timeout)).map_err(SendError::Io)?;
    // A second handle on the same socket: its timeouts are the socket's, also under TLS.
    let clock = Clock {
        sock: s.try_clone().map_err(SendError::Io)?,
        timeout,
    };
    match d.url.scheme {
        Scheme::Http => exchange(s, d, &clock),
        Scheme::Https => {
            let name = ServerName::try_from(d.url.host.clone())
                .map_err(|_| SendError::BadUrl("bad host"))?;
            let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(SendError::Tls)?;
            exchange(rustls::StreamOwned::new(conn, s), d, &clock)
        }
    }
}

/// The socket's read deadline for the answer.
struct Clock {
    sock: TcpStream,
    timeout: Duration,
}

/// An I/O error as the delivery reports it: rustls' own errors (certificates, alerts) come
/// wrapped in `io::Error`s and are unwrapped, so the endpoint list says what TLS refused.
fn io_error(e: std::io::Error) -> SendError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(t) => SendError::Tls(t.clone()),
        None => SendError::Io(e),
    }
}

/// Write the request on `s` and read the status line of the answer.
fn exchange(mut s: impl Read + Write, d: &Delivery<'_>, clock: &Clock) -> Result<u16, SendError> {
    let host = if d.url.host.contains(':') {
        format!("[{}]", d.url.host)
    } else {
        d.url.host.clone()
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: kefu-webhook/1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nX-Kefu-Event: {}\r\n\
         X-Kefu-Delivery: {}\r\nX-Kefu-Timestamp: {}\r\nX-Kefu-Signature: {}\r\n\
         Connection: close\r\n\r\n",
        d.url.path,
        host,
        d.url.port,
        d.body.len(),
        d.event,
        d.id,
        d.ts,
        signature(d.secret, d.ts, d.body)
    );
    s.write_all(head.as_bytes()).map_err(io_error)?;
    s.write_all(d.body).map_err(io_error)?;
    s.flush().map_err(io_error)?;
    let deadline = Instant::now() + clock.timeout;
    let mut buf = [0u8; MAX_ANSWER];
    let mut n = 0;
    // The status line is all that counts: read until it is complete, at most MAX_ANSWER.
    while n < buf.len() && !buf[..n].contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SendError::Io(std::io::ErrorKind::TimedOut.into()));
        }
        clock
            .sock
            .set_read_timeout(Some(left))
            .map_err(SendError::Io)?;
        match s.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(io_error(e)),
        }
    }
    let line = buf[..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
    let status = std::str::from_utf8(line)
        .ok()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or(SendError::BadAnswer)?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(SendError::Status(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_strictly() {
        let u = parse("http://Hooks.Example.com:8080/in?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("hooks.example.com", 8080, "/in?x=1")
        );
        assert_eq!(parse("http://h").unwrap().path, "/");
        assert_eq!(parse("http://[::1]:9/a").unwrap().host, "::1");
        let t = parse("https://Hooks.Example.com/in").unwrap();
        assert_eq!((t.scheme, t.port), (Scheme::Https, 443));
        assert_eq!(parse("http://h/").unwrap().scheme, Scheme::Http);
        assert_eq!(parse("https://h:8443").unwrap().port, 8443);
        for bad in [
            "httpss://h/",
            "HTTP://h/",
            "https://u:p@h/",
            "ftp://h/",
            "http://u:p@h/",
            "http://h/a b",
            "http://h/\r\nX: y",
            "http://h:0/",
            "http://h:99999/",
            "http:///x",
            "http://h_/x",
            "http://h/#f",
            "http://[zz]/",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            signature("s3cret", 1_700_000_000, br#"{"a":1}"#),
            "v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }
}
