//! A small blocking WebSocket client for the tests: real sockets, masked frames, with read
//! timeouts so a broken server fails a test instead of hanging it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long one wait for a message may take in all: server pings answered on the way do not
/// extend it (each read's 10 s timeout would otherwise restart at every ping), so a message
/// that never comes fails the test instead of hanging it.
const MESSAGE_DEADLINE: Duration = Duration::from_secs(30);

/// One frame as received from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// FIN bit.
    pub fin: bool,
    /// RSV1: a permessage-deflate compressed message (RFC 7692).
    pub rsv1: bool,
    /// Opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

/// A connected WebSocket client.
pub struct Ws {
    /// The socket.
    pub sock: TcpStream,
    buf: Vec<u8>,
}

impl Ws {
    /// Wrap a socket whose upgrade the caller already did.
    pub fn from_stream(sock: TcpStream) -> Ws {
        Ws {
            sock,
            buf: Vec::new(),
        }
    }

    /// Connect and upgrade at `path`; panics if the answer is not 101.
    pub fn connect(addr: &str, path: &str) -> Ws {
        let (ws, status, _) = Ws::try_connect(addr, path, &[]);
        assert_eq!(status, 101, "upgrade refused");
        ws
    }

    /// Connect and send an upgrade request with extra headers; returns the status and the head.
    pub fn try_connect(addr: &str, path: &str, extra: &[(&str, &str)]) -> (Ws, u16, String) {
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.set_nodelay(true).unwrap();
        let mut ws = Ws {
            sock,
            buf: Vec::new(),
        };
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        ws.sock.write_all(req.as_bytes()).unwrap();
        let head = ws.read_head();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status == 101 {
            assert!(
                head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                "bad accept key in {head}"
            );
        }
        (ws, status, head)
    }

    fn read_head(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..i + 4]).into_owned();
                self.buf.drain(..i + 4);
                return head;
            }
            let mut tmp = [0u8; 4096];
            let n = self.sock.read(&mut tmp).expect("read head");
            if n == 0 {
                return String::from_utf8_lossy(&self.buf).into_owned();
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    /// Send one masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let n = payload.len();
        if n < 126 {
            f.push(0x80 | n as u8);
        } else if n < 65536 {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.sock.write_all(&f).unwrap();
    }

    /// Send a text message.
    pub fn send_text(&mut self, s: &str) {
        self.send_frame(true, 1, s.as_bytes());
    }

    /// Read one frame; None on EOF or timeout.
    pub fn recv_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((f, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(f);
            }
            let mut tmp = [0u8; 65536];
            match self.sock.read(&mut tmp) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
            }
        }
    }

    /// Read the next text message, answering pings on the way; None on EOF/close/timeout.
    pub fn recv_text(&mut self) -> Option<String> {
        let deadline = Instant::now() + MESSAGE_DEADLINE;
        loop {
            if Instant::now() > deadline {
                return None;
            }
            let f = self.recv_frame()?;
            match f.opcode {
                1 => return Some(String::from_utf8(f.payload).expect("utf8")),
                9 => self.send_frame(true, 10, &f.payload),
                8 => return None,
                _ => {}
            }
        }
    }

    /// Read text messages until one parses as JSON with `"type" == ty`.
    pub fn recv_json_type(&mut self, ty: &str) -> serde_json::Value {
        let deadline = Instant::now() + MESSAGE_DEADLINE;
        loop {
            assert!(
                Instant::now() < deadline,
                "no {ty} within {MESSAGE_DEADLINE:?}"
            );
            let t = self
                .recv_text()
                .unwrap_or_else(|| panic!("closed or timed out while waiting for {ty}"));
            let v: serde_json::Value = serde_json::from_str(&t).expect("json");
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// Wait for the server's close frame; returns its status code.
    pub fn recv_close_code(&mut self) -> Option<u16> {
        loop {
            let f = self.recv_frame()?;
            if f.opcode == 8 {
                return (f.payload.len() >= 2)
                    .then(|| u16::from_be_bytes([f.payload[0], f.payload[1]]));
            }
        }
    }
}

/// Parse one unmasked server frame from the front of `b`.
fn parse(b: &[u8]) -> Option<(Frame, usize)> {
    if b.len() < 2 {
        return None;
    }
    assert_eq!(b[1] & 0x80, 0, "server frames must not be masked");
    let (len, mut at) = match b[1] & 0x7f {
        126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = b.get(at..at + len)?.to_vec();
    at += len;
    Some((
        Frame {
            fin: b[0] & 0x80 != 0,
            rsv1: b[0] & 0x40 != 0,
            opcode: b[0] & 0x0f,
            payload,
        },
        at,
    ))
}
