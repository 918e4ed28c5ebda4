//! `gateway_frame`, `php_serialize`, `register_line` seeds: what GatewayWorker PHP peers send.

use crate::{seed, Seeds};
use kefu::protocol::gateway::frame::{self, Cmd, Header, FLAG_BODY_IS_SCALAR};

fn gw_frame(cmd: Cmd, flag: u8, ext: &[u8], body: &[u8]) -> Vec<u8> {
    let head = Header {
        local_ip: 0x7f00_0001,
        local_port: 2300,
        client_ip: 0x7f00_0001,
        client_port: 40000,
        connection_id: 1,
        flag,
        gateway_port: 7272,
        ..Header::new(cmd)
    };
    let mut out = Vec::new();
    frame::encode(&mut out, &head, ext, body);
    out
}

pub(crate) fn gateway_frame() -> Seeds {
    let worker = gw_frame(
        Cmd::WorkerConnect,
        FLAG_BODY_IS_SCALAR,
        b"",
        br#"{"worker_key":"BusinessWorker:0","secret_key":""}"#,
    );
    let send = gw_frame(Cmd::SendToOne, FLAG_BODY_IS_SCALAR, b"", b"hello");
    let mut two = worker.clone();
    two.extend_from_slice(&send);
    let mut huge = send.clone();
    huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut short = send.clone();
    short[..4].copy_from_slice(&27u32.to_be_bytes());
    let mut overrun = send.clone();
    overrun[24..28].copy_from_slice(&100u32.to_be_bytes());
    let mut unknown = send.clone();
    unknown[4] = 99;
    vec![
        seed("worker_connect", worker),
        seed("send_to_one", send.clone()),
        seed("two_frames", two),
        seed(
            "send_to_group",
            gw_frame(
                Cmd::SendToGroup,
                FLAG_BODY_IS_SCALAR,
                br#"{"group":["room"],"exclude":null}"#,
                b"hi",
            ),
        ),
        seed(
            "set_session",
            gw_frame(
                Cmd::SetSession,
                0,
                b"a:1:{s:3:\"uid\";s:1:\"7\";}",
                b"s:0:\"\";",
            ),
        ),
        seed("kick_null", gw_frame(Cmd::Kick, 0, b"", b"N;")),
        seed("ping", gw_frame(Cmd::Ping, 0, b"", b"s:0:\"\";")),
        seed("huge_length", huge),
        seed("short_length", short),
        seed("ext_overrun", overrun),
        seed("unknown_cmd", unknown),
        seed("partial", send[..20].to_vec()),
    ]
}

pub(crate) fn php_serialize() -> Seeds {
    [
        ("null", "N;"),
        ("bools", "a:2:{i:0;b:1;i:1;b:0;}"),
        ("int", "i:-9223372036854775808;"),
        ("float", "d:1.0E+25;"),
        ("float_inf", "d:-INF;"),
        ("string", "s:5:\"a\"b;c\";"),
        ("utf8", "s:6:\"\u{5ba2}\u{670d}\";"),
        (
            "session",
            "a:3:{s:3:\"uid\";s:2:\"42\";s:4:\"tags\";a:2:{i:0;s:1:\"a\";i:1;s:1:\"b\";}s:1:\"n\";d:0.5;}",
        ),
        ("numeric_key", "a:1:{s:1:\"5\";i:1;}"),
        ("nested", "a:1:{i:0;a:1:{i:0;a:1:{i:0;a:0:{}}}}"),
        ("object", "O:8:\"stdClass\":0:{}"),
        ("reference", "a:2:{i:0;i:1;i:1;R:2;}"),
        ("duplicate", "a:2:{i:0;i:1;i:0;i:2;}"),
        ("huge_string", "s:4294967295:\"\";"),
        ("huge_array", "a:4000000000:{}"),
        ("truncated", "a:1:{s:3:\"ui"),
        ("trailing", "N;N;"),
    ]
    .into_iter()
    .map(|(n, s)| seed(n, s))
    .collect()
}

pub(crate) fn register_line() -> Seeds {
    vec![
        seed(
            "gateway_connect",
            "{\"event\":\"gateway_connect\", \"address\":\"127.0.0.1:2300\", \"secret_key\":\"\"}\n",
        ),
        seed("worker_connect", "{\"event\":\"worker_connect\",\"secret_key\":\"k\"}\n"),
        seed("ping", "{\"event\":\"ping\"}\r\n"),
        seed(
            "broadcast",
            "{\"event\":\"broadcast_addresses\",\"addresses\":[\"127.0.0.1:2300\",\"10.0.0.2:2301\"]}\n",
        ),
        seed("bad_address", "{\"event\":\"gateway_connect\",\"address\":\"x\"}\n"),
        seed("unknown", "{\"event\":\"nope\"}\n{\"event\":\"ping\"}\n"),
        seed("not_json", "hello\n"),
    ]
}
