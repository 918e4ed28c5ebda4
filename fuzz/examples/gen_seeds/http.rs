//! `http_request` seeds: upgrade and plain request heads, the parser every connection meets first.

use crate::{seed, Seeds};

const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{KEY}Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

pub(crate) fn http_request() -> Seeds {
    let mut s = vec![
        seed("upgrade_minimal", upgrade("/", "")),
        seed("upgrade_path_query", upgrade("/ws?id=42&x=%20", "")),
        seed("upgrade_origin_ok", upgrade("/ws", "Origin: http://a.example\r\n")),
        seed("upgrade_origin_bad", upgrade("/ws", "Origin: http://evil.example\r\n")),
        seed(
            "upgrade_subprotocols",
            upgrade("/", "Sec-WebSocket-Protocol: json, chat\r\n"),
        ),
        seed(
            "upgrade_unknown_subprotocol",
            upgrade("/", "Sec-WebSocket-Protocol: mqtt\r\n"),
        ),
        seed(
            "upgrade_cookies",
            upgrade("/", "Cookie: a=1; b=two; empty=\r\n"),
        ),
        seed(
            "upgrade_mixed_case",
            "GET / HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
        ),
        seed(
            "upgrade_version_8",
            upgrade("/", "").replace("Version: 13", "Version: 8"),
        ),
        seed("upgrade_no_key", upgrade("/", "").replace(KEY, "")),
        seed(
            "upgrade_bad_key",
            upgrade("/", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
        ),
        seed("upgrade_post", upgrade("/", "").replacen("GET", "POST", 1)),
        seed("upgrade_http10", upgrade("/", "").replace("HTTP/1.1", "HTTP/1.0")),
        seed("get_plain", "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"),
        seed(
            "get_close",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        seed("get_http10", "GET / HTTP/1.0\r\n\r\n"),
        seed(
            "post_json",
            "POST /gateway/send_to_all HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"message\":\"hi\"}",
        ),
        seed(
            "post_empty_body",
            "POST /api HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        ),
        seed(
            "post_body_too_large",
            "POST /api HTTP/1.1\r\nContent-Length: 5000\r\n\r\nxx",
        ),
        seed(
            "post_bad_length",
            "POST /api HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n",
        ),
        seed(
            "post_two_lengths",
            "POST /api HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        ),
        seed(
            "post_chunked",
            "POST /api HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        seed(
            "pipelined_three",
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nokGET /c HTTP/1.1\r\n\r\n",
        ),
        seed("partial_head", "GET / HTTP/1.1\r\nHost: x\r\n"),
        seed("bare_lf", "GET / HTTP/1.1\nHost: x\n\n"),
        seed(
            "tls_client_hello",
            &b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"[..],
        ),
        seed(
            "header_obs_fold",
            "GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n",
        ),
        seed(
            "utf8_path",
            "GET /chat/%E5%AE%A2%E6%9C%8D?q=\u{5ba2} HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
    ];
    // A head just under and just over the 2 KiB limit the target uses.
    for (name, n) in [("head_near_limit", 1900), ("head_over_limit", 2100)] {
        let pad = "a".repeat(n);
        s.push(seed(
            name,
            format!("GET / HTTP/1.1\r\nX-Pad: {pad}\r\n\r\n"),
        ));
    }
    s
}
