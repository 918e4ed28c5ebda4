//! Blocking HTTP/1.1 POSTs to the business backend, on a few threads off the event loop.
//!
//! Plain `http://` only (the backend is expected on the same host or LAN, like GatewayWorker's
//! BusinessWorker). Every step (resolve + connect, write, read) is bounded by the backend
//! timeout, measured as one overall deadline; answers are bounded to [`MAX_ANSWER`] bytes.
//! Results go back to the worker through a channel, and the worker's waker runs `on_wake`.

use crate::api::ClientId;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest backend answer accepted (body), in bytes.
pub const MAX_ANSWER: usize = 1024 * 1024;
/// Largest answer head accepted, in bytes.
const MAX_HEAD: usize = 16 * 1024;

/// Where to POST: parsed from `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` to connect to (IPv6 hosts keep their brackets).
    pub authority: String,
    /// `Host` header value.
    pub host: String,
    /// Request target (path and query), at least `/`.
    pub path: String,
}

/// Why a backend URL is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Not `http://` (https is not supported: put a local proxy in front if needed).
    NotHttp,
    /// No host.
    NoHost,
    /// Port is not a number in 1..=65535.
    BadPort,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::NotHttp => "only http://host[:port]/path URLs are supported",
            UrlError::NoHost => "the URL has no host",
            UrlError::BadPort => "the URL's port must be 1..65535",
        })
    }
}

impl std::error::Error for UrlError {}

impl Target {
    /// Parse `http://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        let rest = url
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("http://"))
            .and_then(|_| url.get(7..))
            .ok_or(UrlError::NotHttp)?;
        let (hostport, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        // [v6]:port, [v6], host:port, host
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or(UrlError::NoHost)?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(UrlError::BadPort),
            };
            (format!("[{h}]"), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(UrlError::NoHost);
        }
        let port: u16 = match port {
            Some(p) => p
                .parse()
                .ok()
                .filter(|&p| p != 0)
                .ok_or(UrlError::BadPort)?,
            None => 80,
        };
        let host_header = if port == 80 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        Ok(Target {
            authority: format!("{host}:{port}"),
            host: host_header,
            path,
        })
    }
}

/// One backend call.
#[derive(Debug)]
pub struct Job {
    /// Whose message this is.
    pub client: ClientId,
    /// Where to send it.
    pub target: Target,
    /// JSON body.
    pub body: Vec<u8>,
    /// Overall time allowed.
    pub timeout: Duration,
}

/// How a call ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered with this status and body.
    Answer(u16, Vec<u8>),
    /// No complete answer within the timeout.
    TimedOut,
    /// Connection refused, reset, malformed or oversized answer.
    Failed,
}

/// A finished call.
#[derive(Debug)]
pub struct Done {
    /// Whose message it was.
    pub client: ClientId,
    /// The result.
    pub outcome: Outcome,
}

/// The worker's backend threads.
#[derive(Debug)]
pub struct Pool {
    jobs: Sender<Job>,
    done: Receiver<Done>,
}

impl Pool {
    /// Start `threads` threads that run jobs and wake the loop with `waker` after each.
    pub fn start(threads: usize, waker: Arc<mio::Waker>) -> Pool {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&jobs_rx);
            let tx = done_tx.clone();
            let waker = Arc::clone(&waker);
            let spawned = std::thread::Builder::new()
                .name(format!("bridge-{i}"))
                .spawn(move || loop {
                    // Holding the lock only while waiting for a job, never while running one.
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else {
                        return; // The worker dropped the pool.
                    };
                    let outcome = post(&job.target, &job.body, job.timeout);
                    if tx
                        .send(Done {
                            client: job.client,
                            outcome,
                        })
                        .is_err()
                    {
                        return;
                    }
                    let _ = waker.wake();
                });
            if let Err(e) = spawned {
                crate::error!("bridge: cannot start a backend thread: {e}");
            }
        }
        Pool {
            jobs: jobs_tx,
            done: done_rx,
        }
    }

    /// Queue a job; false if no thread is left to run it.
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }

    /// Every finished call so far (never blocks).
    pub fn drain(&self) -> Vec<Done> {
        self.done.try_iter().collect()
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// What went wrong in one step: the deadline, or anything else.
enum Fail {
    Timeout,
    Other,
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        if is_timeout(&e) {
            Fail::Timeout
        } else {
            Fail::Other
        }
    }
}

fn remaining(deadline: Instant) -> Result<Duration, Fail> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(Fail::Timeout);
    }
    Ok(left)
}

fn connect(t: &Target, deadline: Instant) -> Result<TcpStream, Fail> {
    let addrs: Vec<SocketAddr> = t
        .authority
        .to_socket_addrs()
        .map_err(|_| Fail::Other)?
        .collect();
    let mut last = Fail::Other;
    for a in addrs {
        match TcpStream::connect_timeout(&a, remaining(deadline)?) {
            Ok(s) => return Ok(s),
            Err(e) => last = e.into(),
        }
    }
    Err(last)
}

/// POST `body` to `t`; never takes (much) longer than `timeout`.
pub fn post(t: &Target, body: &[u8], timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    match exchange(t, body, deadline) {
        Ok((status, body)) => Outcome::Answer(status, body),
        Err(Fail::Timeout) => Outcome::TimedOut,
        Err(Fail::Other) => Outcome::Failed,
    }
}

fn exchange(t: &Target, body: &[u8], deadline: Instant) -> Result<(u16, Vec<u8>), Fail> {
    let mut s = connect(t, deadline)?;
    let _ = s.set_nodelay(true);
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kefu-bridge/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        t.path,
        t.host,
        env!("CARGO_PKG_VERSION"),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.set_write_timeout(Some(remaining(deadline)?))?;
    s.write_all(&req)?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    loop {
        if let Some(ans) = parse_answer(&buf, false)? {
            return Ok(ans);
        }
        s.set_read_timeout(Some(remaining(deadline)?))?;
        let n = match s.read(&mut tmp) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            // The backend closed: the answer is whatever came (read-to-close framing).
            return parse_answer(&buf, true)?.ok_or(Fail::Other);
        }
        if buf.len() + n > MAX_HEAD + MAX_ANSWER {
            return Err(Fail::Other);
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// A complete answer at the front of `buf` (`eof`: the peer closed), `None` if more is needed.
fn parse_answer(buf: &[u8], eof: bool) -> Result<Option<(u16, Vec<u8>)>, Fail> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let head_len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(Fail::Other),
        Ok(httparse::Status::Partial) if eof => return Err(Fail::Other),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Fail::Other),
    };
    let status = r.code.ok_or(Fail::Other)?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| Fail::Other)?;
            length = Some(v.trim().parse().map_err(|_| Fail::Other)?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    let rest = &buf[head_len..];
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(Some((status, Vec::new())));
    }
    if chunked {
        return match dechunk(rest)? {
            Some(b) => Ok(Some((status, b))),
            None if eof => Err(Fail::Other),
            None => Ok(None),
        };
    }
    match length {
        Some(n) if n > MAX_ANSWER => Err(Fail::Other),
        Some(n) if rest.len() >= n => Ok(Some((status, rest[..n].to_vec()))),
        Some(_) if eof => Err(Fail::Other),
        Some(_) => Ok(None),
        None if eof => Ok(Some((status, rest.to_vec()))),
        None => Ok(None),
    }
}

/// Decode a complete chunked body; `None` if it is not complete yet.
fn dechunk(mut b: &[u8]) -> Result<Option<Vec<u8>>, Fail> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&b[..eol]).map_err(|_| Fail::Other)?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| Fail::Other)?;
        b = &b[eol + 2..];
        if size == 0 {
            // Trailers are ignored; the answer is complete once the final CRLF is in.
            return Ok(b.windows(2).any(|w| w == b"\r\n").then_some(out));
        }
        if out.len() + size > MAX_ANSWER {
            return Err(Fail::Other);
        }
        if b.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:8080/api/msg?x=1").unwrap();
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.path, "/api/msg?x=1");
        let t = Target::parse("HTTP://example.com").unwrap();
        assert_eq!(t.authority, "example.com:80");
        assert_eq!(t.host, "example.com");
        assert_eq!(t.path, "/");
        let t = Target::parse("http://[::1]:9/x").unwrap();
        assert_eq!(t.authority, "[::1]:9");
        assert_eq!(Target::parse("https://a/"), Err(UrlError::NotHttp));
        assert_eq!(Target::parse("http://:80/"), Err(UrlError::NoHost));
        assert_eq!(Target::parse("http://a:0/"), Err(UrlError::BadPort));
        assert_eq!(Target::parse("http://a:x/"), Err(UrlError::BadPort));
        assert_eq!(Target::parse("htt"), Err(UrlError::NotHttp));
    }

    #[test]
    fn answers() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        assert!(matches!(parse_answer(a, false), Ok(Some((200, b))) if b == b"hi"));
        assert!(matches!(parse_answer(&a[..a.len() - 1], false), Ok(None)));
        assert!(parse_answer(&a[..a.len() - 1], true).is_err());
        let c = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n3;x=y\r\n!!!\r\n0\r\n\r\n";
        assert!(matches!(parse_answer(c, false), Ok(Some((201, b))) if b == b"hi!!!"));
        assert!(matches!(parse_answer(&c[..c.len() - 2], false), Ok(None)));
        let close = b"HTTP/1.0 500 Oops\r\n\r\nbad";
        assert!(matches!(parse_answer(close, false), Ok(None)));
        assert!(matches!(parse_answer(close, true), Ok(Some((500, b))) if b == b"bad"));
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_ANSWER + 1
        );
        assert!(parse_answer(big.as_bytes(), false).is_err());
    }
}
