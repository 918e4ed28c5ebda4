//! GatewayWorker's inner protocol: a 28-byte big-endian header, then `ext_data`, then the body.
//!
//! Header fields, in order: total length (u32, header included), command (u8), gateway lan IP
//! (u32), gateway inner port (u16), client IP (u32), client port (u16), connection id (u32),
//! flags (u8), gateway listen port (u16), `ext_data` length (u32). The body is the rest of the
//! frame; flag bit 0 says it is a plain string, otherwise it is PHP-`serialize()`d.
//!
//! A query's answer is not a frame: it is a u32 length and a `serialize()`d value
//! ([`encode_reply`]).

use std::fmt;

/// Header length.
pub const HEAD_LEN: usize = 28;
/// The body is a string, not a `serialize()`d value.
pub const FLAG_BODY_IS_SCALAR: u8 = 0x01;
/// Send the body to the client as it is, without the client protocol's framing.
pub const FLAG_NOT_CALL_ENCODE: u8 = 0x02;

/// A command of the inner protocol (GatewayWorker's `CMD_*` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmd {
    /// Gateway -> BusinessWorker: a client connected.
    OnConnect,
    /// Gateway -> BusinessWorker: a client message.
    OnMessage,
    /// Gateway -> BusinessWorker: a client went away.
    OnClose,
    /// Send to one client.
    SendToOne,
    /// Send to every client (or a list, or all but some).
    SendToAll,
    /// Close a client after what is queued for it.
    Kick,
    /// Close a client now.
    Destroy,
    /// Merge into a session.
    UpdateSession,
    /// Every session on this gateway.
    GetAllClientSessions,
    /// Is a connection online.
    IsOnline,
    /// Bind a uid.
    BindUid,
    /// Unbind the uid.
    UnbindUid,
    /// Send to uids.
    SendToUid,
    /// Connection ids of a uid.
    GetClientIdByUid,
    /// Connection ids of several uids.
    BatchGetClientIdByUid,
    /// Join a group.
    JoinGroup,
    /// Leave a group.
    LeaveGroup,
    /// Send to groups.
    SendToGroup,
    /// Sessions of a group's members.
    GetClientSessionsByGroup,
    /// Members of a group (or all clients).
    GetClientCountByGroup,
    /// Fields of the clients matching a filter.
    Select,
    /// Names of the non-empty groups.
    GetGroupIdList,
    /// Dissolve a group.
    Ungroup,
    /// Member counts of several groups.
    BatchGetClientCountByGroup,
    /// A BusinessWorker introduces itself.
    WorkerConnect,
    /// Keep-alive between gateway and BusinessWorker.
    Ping,
    /// A GatewayClient introduces itself (only needed with a secret key).
    GatewayClientConnect,
    /// One session.
    GetSessionByClientId,
    /// Replace a session.
    SetSession,
    /// Gateway -> BusinessWorker: a WebSocket handshake completed.
    OnWebSocketConnect,
}

impl Cmd {
    /// The command of a wire number.
    pub fn from_u8(n: u8) -> Option<Cmd> {
        Some(match n {
            1 => Cmd::OnConnect,
            3 => Cmd::OnMessage,
            4 => Cmd::OnClose,
            5 => Cmd::SendToOne,
            6 => Cmd::SendToAll,
            7 => Cmd::Kick,
            8 => Cmd::Destroy,
            9 => Cmd::UpdateSession,
            10 => Cmd::GetAllClientSessions,
            11 => Cmd::IsOnline,
            12 => Cmd::BindUid,
            13 => Cmd::UnbindUid,
            14 => Cmd::SendToUid,
            15 => Cmd::GetClientIdByUid,
            16 => Cmd::BatchGetClientIdByUid,
            20 => Cmd::JoinGroup,
            21 => Cmd::LeaveGroup,
            22 => Cmd::SendToGroup,
            23 => Cmd::GetClientSessionsByGroup,
            24 => Cmd::GetClientCountByGroup,
            25 => Cmd::Select,
            26 => Cmd::GetGroupIdList,
            27 => Cmd::Ungroup,
            28 => Cmd::BatchGetClientCountByGroup,
            200 => Cmd::WorkerConnect,
            201 => Cmd::Ping,
            202 => Cmd::GatewayClientConnect,
            203 => Cmd::GetSessionByClientId,
            204 => Cmd::SetSession,
            205 => Cmd::OnWebSocketConnect,
            _ => return None,
        })
    }

    /// The wire number.
    pub fn to_u8(self) -> u8 {
        match self {
            Cmd::OnConnect => 1,
            Cmd::OnMessage => 3,
            Cmd::OnClose => 4,
            Cmd::SendToOne => 5,
            Cmd::SendToAll => 6,
            Cmd::Kick => 7,
            Cmd::Destroy => 8,
            Cmd::UpdateSession => 9,
            Cmd::GetAllClientSessions => 10,
            Cmd::IsOnline => 11,
            Cmd::BindUid => 12,
            Cmd::UnbindUid => 13,
            Cmd::SendToUid => 14,
            Cmd::GetClientIdByUid => 15,
            Cmd::BatchGetClientIdByUid => 16,
            Cmd::JoinGroup => 20,
            Cmd::LeaveGroup => 21,
            Cmd::SendToGroup => 22,
            Cmd::GetClientSessionsByGroup => 23,
            Cmd::GetClientCountByGroup => 24,
            Cmd::Select => 25,
            Cmd::GetGroupIdList => 26,
            Cmd::Ungroup => 27,
            Cmd::BatchGetClientCountByGroup => 28,
            Cmd::WorkerConnect => 200,
            Cmd::Ping => 201,
            Cmd::GatewayClientConnect => 202,
            Cmd::GetSessionByClientId => 203,
            Cmd::SetSession => 204,
            Cmd::OnWebSocketConnect => 205,
        }
    }
}

/// The fixed part of a frame, lengths excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The command.
    pub cmd: Cmd,
    /// Gateway lan IP (IPv4, host order of `ip2long`).
    pub local_ip: u32,
    /// Gateway inner port.
    pub local_port: u16,
    /// Client IP (IPv4).
    pub client_ip: u32,
    /// Client port.
    pub client_port: u16,
    /// Connection id on that gateway.
    pub connection_id: u32,
    /// `FLAG_*` bits.
    pub flag: u8,
    /// The port the client connected to.
    pub gateway_port: u16,
}

impl Header {
    /// A header with only the command set (GatewayWorker's `$empty`).
    pub fn new(cmd: Cmd) -> Header {
        Header {
            cmd,
            local_ip: 0,
            local_port: 0,
            client_ip: 0,
            client_port: 0,
            connection_id: 0,
            flag: 0,
            gateway_port: 0,
        }
    }
}

/// One decoded frame, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header.
    pub head: Header,
    /// `ext_data` (uid, group, JSON parameters or a serialized session, by command).
    pub ext: &'a [u8],
    /// The body: a string if `head.flag` has [`FLAG_BODY_IS_SCALAR`], else `serialize()`d.
    pub body: &'a [u8],
}

impl Frame<'_> {
    /// Whether the body is a plain string.
    pub fn body_is_scalar(&self) -> bool {
        self.head.flag & FLAG_BODY_IS_SCALAR != 0
    }

    /// Whether the sender asked for the body to go out unframed.
    pub fn raw(&self) -> bool {
        self.head.flag & FLAG_NOT_CALL_ENCODE != 0
    }
}

/// Why bytes are not a frame. Every one closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The declared length is larger than this side accepts (known from the first 4 bytes).
    TooLarge {
        /// Declared total length.
        declared: u32,
        /// Largest accepted.
        max: usize,
    },
    /// The declared length is shorter than the header.
    TooShort {
        /// Declared total length.
        declared: u32,
    },
    /// `ext_data` runs past the end of the frame.
    ExtOverrun {
        /// Declared `ext_data` length.
        ext_len: u32,
        /// Bytes after the header.
        room: usize,
    },
    /// A command number GatewayWorker does not define.
    UnknownCmd(u8),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::TooLarge { declared, max } => {
                write!(f, "gateway frame of {declared} bytes exceeds {max}")
            }
            FrameError::TooShort { declared } => {
                write!(
                    f,
                    "gateway frame length {declared} is below the header's {HEAD_LEN}"
                )
            }
            FrameError::ExtOverrun { ext_len, room } => {
                write!(
                    f,
                    "gateway ext_data of {ext_len} bytes overruns the {room} left"
                )
            }
            FrameError::UnknownCmd(c) => write!(f, "unknown gateway command {c}"),
        }
    }
}

impl std::error::Error for FrameError {}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_be_bytes(a)
}

fn be16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_be_bytes(a)
}

/// The frame at the start of `buf` and its length, `Ok(None)` if more bytes are needed.
///
/// The declared length is checked as soon as its 4 bytes are there, so a peer announcing a
/// huge frame is refused before anything is buffered for it. `max` is the largest whole frame.
pub fn decode(buf: &[u8], max: usize) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let declared = be32(buf, 0);
    let total = declared as usize;
    if total > max {
        return Err(FrameError::TooLarge { declared, max });
    }
    if total < HEAD_LEN {
        return Err(FrameError::TooShort { declared });
    }
    if buf.len() < HEAD_LEN {
        return Ok(None);
    }
    let cmd_n = buf[4];
    let cmd = Cmd::from_u8(cmd_n).ok_or(FrameError::UnknownCmd(cmd_n))?;
    let ext_len = be32(buf, 24);
    let room = total - HEAD_LEN;
    if ext_len as usize > room {
        return Err(FrameError::ExtOverrun { ext_len, room });
    }
    if buf.len() < total {
        return Ok(None);
    }
    let head = Header {
        cmd,
        local_ip: be32(buf, 5),
        local_port: be16(buf, 9),
        client_ip: be32(buf, 11),
        client_port: be16(buf, 15),
        connection_id: be32(buf, 17),
        flag: buf[21],
        gateway_port: be16(buf, 22),
    };
    let ext_end = HEAD_LEN + ext_len as usize;
    Ok(Some((
        Frame {
            head,
            ext: &buf[HEAD_LEN..ext_end],
            body: &buf[ext_end..total],
        },
        total,
    )))
}

/// Appends one frame to `out`. `head.flag` is sent as given: set [`FLAG_BODY_IS_SCALAR`] for a
/// string body. Returns `false` (and appends nothing) if the frame would not fit its u32 length.
pub fn encode(out: &mut Vec<u8>, head: &Header, ext: &[u8], body: &[u8]) -> bool {
    let total = HEAD_LEN as u64 + ext.len() as u64 + body.len() as u64;
    let Ok(total) = u32::try_from(total) else {
        return false;
    };
    out.reserve(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.push(head.cmd.to_u8());
    out.extend_from_slice(&head.local_ip.to_be_bytes());
    out.extend_from_slice(&head.local_port.to_be_bytes());
    out.extend_from_slice(&head.client_ip.to_be_bytes());
    out.extend_from_slice(&head.client_port.to_be_bytes());
    out.extend_from_slice(&head.connection_id.to_be_bytes());
    out.push(head.flag);
    out.extend_from_slice(&head.gateway_port.to_be_bytes());
    out.extend_from_slice(&(ext.len() as u32).to_be_bytes());
    out.extend_from_slice(ext);
    out.extend_from_slice(body);
    true
}

/// Appends a query's answer: the length of `serialized` as a u32, then `serialized`.
pub fn encode_reply(out: &mut Vec<u8>, serialized: &[u8]) {
    out.extend_from_slice(&(serialized.len() as u32).to_be_bytes());
    out.extend_from_slice(serialized);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Header {
        Header {
            cmd: Cmd::OnMessage,
            local_ip: 0x7f00_0001,
            local_port: 2300,
            client_ip: 0x0a00_0002,
            client_port: 51000,
            connection_id: 7,
            flag: FLAG_BODY_IS_SCALAR,
            gateway_port: 7272,
        }
    }

    #[test]
    fn known_bytes_from_php_pack() {
        // PHP: GatewayProtocol::encode(['cmd'=>3,'local_ip'=>2130706433,'local_port'=>2300,
        // 'client_ip'=>167772162,'client_port'=>51000,'connection_id'=>7,'flag'=>0,
        // 'gateway_port'=>7272,'ext_data'=>'x','body'=>'hi'])
        let want: &[u8] = &[
            0, 0, 0, 31, 3, 127, 0, 0, 1, 0x08, 0xfc, 10, 0, 0, 2, 0xc7, 0x38, 0, 0, 0, 7, 1, 0x1c,
            0x68, 0, 0, 0, 1, b'x', b'h', b'i',
        ];
        let mut out = Vec::new();
        assert!(encode(&mut out, &sample(), b"x", b"hi"));
        assert_eq!(out, want);
        let (f, n) = decode(want, 1024).unwrap().unwrap();
        assert_eq!(n, want.len());
        assert_eq!(f.head, sample());
        assert_eq!((f.ext, f.body), (&b"x"[..], &b"hi"[..]));
        assert!(f.body_is_scalar() && !f.raw());
    }

    #[test]
    fn partial_needs_more() {
        let mut out = Vec::new();
        encode(&mut out, &sample(), b"ext", b"body");
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut], 1024), Ok(None), "cut {cut}");
        }
    }

    #[test]
    fn huge_declared_length_refused_from_four_bytes() {
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], 65536),
            Err(FrameError::TooLarge {
                declared: u32::MAX,
                max: 65536
            })
        );
    }

    #[test]
    fn short_declared_length_refused() {
        assert_eq!(
            decode(&[0, 0, 0, 27], 1024),
            Err(FrameError::TooShort { declared: 27 })
        );
        assert_eq!(
            decode(&[0, 0, 0, 0], 1024),
            Err(FrameError::TooShort { declared: 0 })
        );
    }

    #[test]
    fn ext_overrun_refused_before_the_body_arrives() {
        let mut out = Vec::new();
        encode(&mut out, &sample(), b"", b"0123456789");
        out[24..28].copy_from_slice(&11u32.to_be_bytes());
        assert_eq!(
            decode(&out[..HEAD_LEN], 1024),
            Err(FrameError::ExtOverrun {
                ext_len: 11,
                room: 10
            })
        );
    }

    #[test]
    fn unknown_command_refused() {
        let mut out = Vec::new();
        encode(&mut out, &sample(), b"", b"");
        out[4] = 2;
        assert_eq!(decode(&out, 1024), Err(FrameError::UnknownCmd(2)));
    }

    #[test]
    fn every_command_number_round_trips() {
        for n in 0..=255u8 {
            if let Some(c) = Cmd::from_u8(n) {
                assert_eq!(c.to_u8(), n);
            }
        }
    }

    #[test]
    fn reply_is_length_then_bytes() {
        let mut out = Vec::new();
        encode_reply(&mut out, b"i:2;");
        assert_eq!(out, b"\0\0\0\x04i:2;");
    }

    proptest! {
        #[test]
        fn pipelined_frames_round_trip(
            frames in proptest::collection::vec(
                (any::<u32>(), any::<u16>(), any::<u32>(), any::<u8>(),
                 proptest::collection::vec(any::<u8>(), 0..40),
                 proptest::collection::vec(any::<u8>(), 0..80)),
                1..5),
            split in any::<prop::sample::Index>(),
        ) {
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for (ip, port, id, flag, ext, body) in &frames {
                let head = Header { local_ip: *ip, local_port: *port, connection_id: *id,
                    flag: *flag, ..Header::new(Cmd::SendToOne) };
                prop_assert!(encode(&mut wire, &head, ext, body));
                want.push((head, ext.clone(), body.clone()));
            }
            // Fed in two pieces, like a socket would deliver them.
            let cut = split.index(wire.len() + 1);
            let mut buf = wire[..cut].to_vec();
            let mut got = Vec::new();
            let mut rest = &wire[cut..];
            loop {
                match decode(&buf, 4096).unwrap() {
                    Some((f, n)) => {
                        got.push((f.head, f.ext.to_vec(), f.body.to_vec()));
                        buf.drain(..n);
                    }
                    None if !rest.is_empty() => {
                        buf.extend_from_slice(rest);
                        rest = &[];
                    }
                    None => break,
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, want);
        }
    }
}
