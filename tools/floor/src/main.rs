//! kefu-floor: the least work a WebSocket server can do for each case of `tools/bench.sh`, so
//! the benchmarks can say how much of a server's CPU the kernel's loopback costs alone take.
//!
//! One thread, one mio loop, and nothing else: no validation (frames are taken as well
//! formed, JSON is searched for the three fields the cases use, never parsed), no app logic,
//! no limits beyond a cap on a connection's queued output. It speaks exactly the wire format
//! `kefu-load` expects:
//! - `echo`: every text or binary message comes back to its sender;
//! - `chat`: the workerman-chat subset the load cases use. A `login` is answered to the
//!   newcomer only (not announced to the room: setup is never measured); a `say` to `all` is
//!   framed once per message into its room's turn buffer and every member gets that buffer
//!   with one `write` per turn; a private `say` goes to its addressee and back to its sender.
//!   Messages carry the same fields, in the same order and with ids of the same length, as
//!   kefu's chat app sends, so both put the same bytes on the wire per delivery.
//!
//! Output is written once per loop turn per connection, like kefu. This is not a server to
//! deploy: it trusts its peer completely. It binds loopback by default.
//!
//! Usage: `kefu-floor --port 8282 --mode echo|chat [--host 127.0.0.1]`

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

const LISTENER: Token = Token(usize::MAX);
const SCRATCH: usize = 64 * 1024;
/// A connection whose queued output passes this is dropped (the floor never blocks reading).
const MAX_OUT: usize = 64 << 20;
/// Longest upgrade request kept while waiting for its end.
const MAX_HEAD: usize = 16 * 1024;
/// Stands in for kefu's worker incarnation in client ids (same 32-hex-digit form).
const INC: u64 = 0x00f1_0042;
const NO_ROOM: usize = usize::MAX;
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Echo,
    Chat,
}

struct Conn {
    stream: TcpStream,
    upgraded: bool,
    /// Input bytes of an incomplete frame (or request head).
    inb: Vec<u8>,
    /// Output only this connection sends, in order.
    out: Vec<u8>,
    /// The last write was short: wait for a writable event.
    blocked: bool,
    dirty: bool,
    room: usize,
    /// Index in its room's member list.
    room_pos: usize,
    /// Bytes of the room's turn buffer already moved into `out` (or queued before joining).
    room_off: usize,
    /// `{"type":"say","from_client_id":"…","from_client_name":"…","to_client_id":"`.
    say_prefix: Vec<u8>,
    id: [u8; 32],
}

struct Room {
    members: Vec<usize>,
    /// This turn's broadcasts to the room, framed.
    buf: Vec<u8>,
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    mode: Mode,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    next_gen: u32,
    rooms: Vec<Room>,
    room_ids: HashMap<Vec<u8>, usize>,
    dirty: Vec<usize>,
    dirty_rooms: Vec<usize>,
    close: Vec<usize>,
    scratch: Vec<u8>,
    frame: Vec<u8>,
    clock_sec: u64,
    clock: [u8; 19],
}

fn main() {
    let mut port = 8282u16;
    let mut host = "127.0.0.1".to_string();
    let mut mode = Mode::Echo;
    let mut args = std::env::args().skip(1);
    while let Some(k) = args.next() {
        let v = args.next().unwrap_or_default();
        match k.as_str() {
            "--port" => port = v.parse().unwrap_or_else(|_| usage()),
            "--host" => host = v,
            "--mode" => {
                mode = match v.as_str() {
                    "echo" => Mode::Echo,
                    "chat" => Mode::Chat,
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    let addr: SocketAddr = format!("{host}:{port}").parse().unwrap_or_else(|_| usage());
    match Server::new(addr, mode).and_then(|mut s| s.run()) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("kefu-floor: {e}");
            std::process::exit(1);
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: kefu-floor --port P --mode echo|chat [--host 127.0.0.1]");
    std::process::exit(2)
}

impl Server {
    fn new(addr: SocketAddr, mode: Mode) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        eprintln!(
            "kefu-floor {} on ws://{addr}/",
            if mode == Mode::Echo { "echo" } else { "chat" }
        );
        Ok(Server {
            poll,
            listener,
            mode,
            conns: Vec::new(),
            free: Vec::new(),
            next_gen: 0,
            rooms: Vec::new(),
            room_ids: HashMap::new(),
            dirty: Vec::new(),
            dirty_rooms: Vec::new(),
            close: Vec::new(),
            scratch: vec![0; SCRATCH],
            frame: Vec::with_capacity(512),
            clock_sec: u64::MAX,
            clock: [b'0'; 19],
        })
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.tick_clock();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    Token(slot) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.read(slot);
                        }
                        if ev.is_writable() {
                            if let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                                c.blocked = false;
                                if !c.out.is_empty() && !c.dirty {
                                    c.dirty = true;
                                    self.dirty.push(slot);
                                }
                            }
                        }
                    }
                }
                self.apply_closes();
            }
            self.flush();
            self.apply_closes();
        }
    }

    /// Re-formats the `time` field once per second (`YYYY-MM-DD HH:MM:SS`, UTC).
    fn tick_clock(&mut self) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs == self.clock_sec {
            return;
        }
        self.clock_sec = secs;
        let (y, m, d) = civil(secs / 86_400);
        let r = secs % 86_400;
        let text = format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            r / 3600,
            r / 60 % 60,
            r % 60
        );
        self.clock.copy_from_slice(&text.as_bytes()[..19]);
    }

    fn accept(&mut self) {
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("kefu-floor: accept: {e}");
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let slot = self.free.pop().unwrap_or(self.conns.len());
            if self
                .poll
                .registry()
                .register(
                    &mut stream,
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                continue;
            }
            self.next_gen = self.next_gen.wrapping_add(1);
            let mut id = [0u8; 32];
            id.copy_from_slice(format!("{INC:016x}{slot:08x}{:08x}", self.next_gen).as_bytes());
            let c = Conn {
                stream,
                upgraded: false,
                inb: Vec::new(),
                out: Vec::new(),
                blocked: false,
                dirty: false,
                room: NO_ROOM,
                room_pos: 0,
                room_off: 0,
                say_prefix: Vec::new(),
                id,
            };
            if slot == self.conns.len() {
                self.conns.push(Some(c));
            } else {
                self.conns[slot] = Some(c);
            }
        }
    }

    fn conn(&mut self, slot: usize) -> Option<&mut Conn> {
        self.conns.get_mut(slot).and_then(Option::as_mut)
    }

    /// Reads until the socket is drained (a short read) and handles every complete frame.
    fn read(&mut self, slot: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some(c) = self.conn(slot) {
            let n = match c.stream.read(&mut scratch) {
                Ok(0) => {
                    self.close.push(slot);
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close.push(slot);
                    break;
                }
            };
            let mut held = std::mem::take(&mut c.inb);
            if held.is_empty() {
                let used = self.process(slot, &mut scratch[..n]);
                held.extend_from_slice(&scratch[used..n]);
            } else {
                held.extend_from_slice(&scratch[..n]);
                let used = self.process(slot, &mut held);
                held.drain(..used);
            }
            let Some(c) = self.conn(slot) else { break };
            c.inb = held;
            if n < scratch.len() {
                break;
            }
        }
        self.scratch = scratch;
    }

    /// Handles the complete frames (or the request head) at the start of `buf`; returns the
    /// bytes used.
    fn process(&mut self, slot: usize, buf: &mut [u8]) -> usize {
        let mut at = 0;
        let Some(c) = self.conn(slot) else { return 0 };
        if !c.upgraded {
            let Some(end) = find(buf, b"\r\n\r\n") else {
                if buf.len() > MAX_HEAD {
                    self.close.push(slot);
                }
                return 0;
            };
            let Some(key) = header(&buf[..end], b"sec-websocket-key") else {
                self.close.push(slot);
                return buf.len();
            };
            let mut h = Sha1::new();
            h.update(key);
            h.update(WS_GUID);
            let accept = STANDARD.encode(h.finalize());
            c.out.extend_from_slice(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
            );
            c.out.extend_from_slice(accept.as_bytes());
            c.out.extend_from_slice(b"\r\n\r\n");
            c.upgraded = true;
            self.mark(slot);
            at = end + 4;
        }
        loop {
            let rest = &mut buf[at..];
            if rest.len() < 2 {
                return at;
            }
            let op = rest[0] & 0x0f;
            let (len, mut head) = match rest[1] & 0x7f {
                126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
                127 if rest.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&rest[2..10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                126 | 127 => return at,
                n => (n as usize, 2),
            };
            let masked = rest[1] & 0x80 != 0;
            let mut key = [0u8; 4];
            if masked {
                if rest.len() < head + 4 {
                    return at;
                }
                key.copy_from_slice(&rest[head..head + 4]);
                head += 4;
            }
            let Some(total) = head.checked_add(len).filter(|t| *t <= rest.len()) else {
                return at;
            };
            let payload = &mut rest[head..total];
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= key[i & 3];
                }
            }
            match op {
                1 | 2 => match self.mode {
                    Mode::Echo => self.echo(slot, op, payload),
                    Mode::Chat => self.chat(slot, payload),
                },
                8 => {
                    self.close.push(slot);
                    return buf.len();
                }
                _ => {}
            }
            at += total;
        }
    }

    fn mark(&mut self, slot: usize) {
        if let Some(c) = self.conns[slot].as_mut() {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(slot);
            }
        }
    }

    fn echo(&mut self, slot: usize, op: u8, payload: &[u8]) {
        self.frame.clear();
        frame_head(&mut self.frame, op, payload.len());
        self.frame.extend_from_slice(payload);
        let frame = std::mem::take(&mut self.frame);
        self.push_own(slot, &frame);
        self.frame = frame;
    }

    /// Queues bytes only `slot` gets, after the room broadcasts queued for it before them.
    fn push_own(&mut self, slot: usize, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if let Some(room) = self.rooms.get(c.room) {
            if room.buf.len() > c.room_off {
                c.out.extend_from_slice(&room.buf[c.room_off..]);
                c.room_off = room.buf.len();
            }
        }
        c.out.extend_from_slice(bytes);
        if c.out.len() > MAX_OUT {
            self.close.push(slot);
        }
        self.mark(slot);
    }

    fn chat(&mut self, slot: usize, msg: &[u8]) {
        // `{"type":"` is 9 bytes; the next one tells login, say and pong apart.
        match msg.get(9) {
            Some(b'l') => self.login(slot, msg),
            Some(b's') => self.say(slot, msg),
            _ => {}
        }
    }

    fn login(&mut self, slot: usize, msg: &[u8]) {
        let (Some(name), Some(room_id)) = (
            field(msg, b"\"client_name\":\""),
            field(msg, b"\"room_id\":\""),
        ) else {
            return;
        };
        let room = match self.room_ids.get(room_id) {
            Some(&r) => r,
            None => {
                self.rooms.push(Room {
                    members: Vec::new(),
                    buf: Vec::new(),
                });
                self.room_ids.insert(room_id.to_vec(), self.rooms.len() - 1);
                self.rooms.len() - 1
            }
        };
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        if c.room != NO_ROOM {
            return;
        }
        let mut p = Vec::with_capacity(128);
        p.extend_from_slice(b"{\"type\":\"say\",\"from_client_id\":\"");
        p.extend_from_slice(&c.id);
        p.extend_from_slice(b"\",\"from_client_name\":\"");
        p.extend_from_slice(name);
        p.extend_from_slice(b"\",\"to_client_id\":\"");
        c.say_prefix = p;
        let mut body = Vec::with_capacity(128);
        body.extend_from_slice(b"{\"type\":\"login\",\"client_id\":\"");
        body.extend_from_slice(&c.id);
        body.extend_from_slice(b"\",\"client_name\":\"");
        body.extend_from_slice(name);
        body.extend_from_slice(b"\",\"time\":\"");
        body.extend_from_slice(&self.clock);
        body.extend_from_slice(b"\"}");
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame_head(&mut frame, 1, body.len());
        frame.extend_from_slice(&body);
        self.push_own(slot, &frame);
        let r = &mut self.rooms[room];
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        c.room = room;
        c.room_pos = r.members.len();
        c.room_off = r.buf.len();
        r.members.push(slot);
    }

    fn say(&mut self, slot: usize, msg: &[u8]) {
        let (Some(to), Some(content)) = (
            field(msg, b"\"to_client_id\":\""),
            field(msg, b"\"content\":\""),
        ) else {
            return;
        };
        let Some(c) = self.conns[slot].as_ref() else {
            return;
        };
        if c.room == NO_ROOM {
            return;
        }
        const MID: &[u8] = b"\",\"content\":\"";
        const TIME: &[u8] = b"\",\"time\":\"";
        const END: &[u8] = b"\"}";
        let len = c.say_prefix.len()
            + to.len()
            + MID.len()
            + content.len()
            + TIME.len()
            + self.clock.len()
            + END.len();
        let room = c.room;
        let mut f = std::mem::take(&mut self.frame);
        f.clear();
        frame_head(&mut f, 1, len);
        for part in [&c.say_prefix[..], to, MID, content, TIME, &self.clock, END] {
            f.extend_from_slice(part);
        }
        if to == b"all" {
            let r = &mut self.rooms[room];
            if r.buf.is_empty() {
                self.dirty_rooms.push(room);
            }
            r.buf.extend_from_slice(&f);
        } else if let Some(target) = to.get(16..24).and_then(hex) {
            if self.conns.get(target).is_some_and(Option::is_some) {
                self.push_own(target, &f);
                if target != slot {
                    self.push_own(slot, &f);
                }
            }
        }
        self.frame = f;
    }

    /// Writes every room's turn buffer to its members, then every connection's own bytes.
    fn flush(&mut self) {
        for room in std::mem::take(&mut self.dirty_rooms) {
            let r = &mut self.rooms[room];
            for &m in &r.members {
                let Some(c) = self.conns[m].as_mut() else {
                    continue;
                };
                let tail = &r.buf[c.room_off.min(r.buf.len())..];
                c.room_off = 0;
                if tail.is_empty() {
                    continue;
                }
                if c.out.is_empty() && !c.blocked {
                    match c.stream.write(tail) {
                        Ok(n) if n == tail.len() => continue,
                        Ok(n) => {
                            c.out.extend_from_slice(&tail[n..]);
                            c.blocked = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            c.out.extend_from_slice(tail);
                            c.blocked = true;
                        }
                        Err(_) => self.close.push(m),
                    }
                } else {
                    c.out.extend_from_slice(tail);
                    if c.out.len() > MAX_OUT {
                        self.close.push(m);
                    }
                    if !c.dirty {
                        c.dirty = true;
                        self.dirty.push(m);
                    }
                }
            }
            r.buf.clear();
        }
        for slot in std::mem::take(&mut self.dirty) {
            let Some(c) = self.conns[slot].as_mut() else {
                continue;
            };
            c.dirty = false;
            if c.blocked || c.out.is_empty() {
                continue;
            }
            match c.stream.write(&c.out) {
                Ok(n) if n == c.out.len() => c.out.clear(),
                Ok(n) => {
                    c.out.drain(..n);
                    c.blocked = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.blocked = true,
                Err(_) => self.close.push(slot),
            }
        }
    }

    fn apply_closes(&mut self) {
        while let Some(slot) = self.close.pop() {
            let Some(c) = self.conns.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            if let Some(r) = self.rooms.get_mut(c.room) {
                r.members.swap_remove(c.room_pos);
                if let Some(&moved) = r.members.get(c.room_pos) {
                    if let Some(m) = self.conns[moved].as_mut() {
                        m.room_pos = c.room_pos;
                    }
                }
            }
            self.free.push(slot);
        }
    }
}

/// Appends an unmasked FIN frame header for `len` payload bytes.
fn frame_head(out: &mut Vec<u8>, op: u8, len: usize) {
    out.push(0x80 | op);
    if len < 126 {
        out.push(len as u8);
    } else if len <= 0xffff {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The string value after `key` (which ends in the opening quote), up to the closing quote.
fn field<'a>(msg: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = find(msg, key)? + key.len();
    let len = msg[start..].iter().position(|&b| b == b'"')?;
    Some(&msg[start..start + len])
}

/// The value of a request header (name in lower case), trimmed.
fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon].eq_ignore_ascii_case(name).then(|| {
            let v = &line[colon + 1..];
            let s = v
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(v.len());
            let e = v
                .iter()
                .rposition(|b| !b.is_ascii_whitespace())
                .map_or(s, |e| e + 1);
            &v[s..e.max(s)]
        })
    })
}

fn hex(digits: &[u8]) -> Option<usize> {
    usize::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar, by
/// counting 400-year eras of 146 097 days from 0000-03-01.
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(20_785), (2026, 11, 28));
    }

    #[test]
    fn fields_and_headers() {
        let m = br#"{"type":"say","to_client_id":"all","content":"1:2:3"}"#;
        assert_eq!(field(m, b"\"to_client_id\":\""), Some(&b"all"[..]));
        assert_eq!(field(m, b"\"content\":\""), Some(&b"1:2:3"[..]));
        assert_eq!(field(m, b"\"room_id\":\""), None);
        let h = b"GET / HTTP/1.1\r\nSec-WebSocket-Key:  abc== \r\nHost: x";
        assert_eq!(header(h, b"sec-websocket-key"), Some(&b"abc=="[..]));
    }
}
