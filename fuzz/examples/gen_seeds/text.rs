//! `text_lines` seeds: CR/LF streams at and over the line limit the text protocol enforces.

use crate::{seed, Seeds};

/// `max_line` is the first byte (also the chunk size: first % 7 + 1), then the stream.
fn lines(max_line: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![max_line];
    v.extend_from_slice(body);
    v
}

pub(crate) fn text_lines() -> Seeds {
    let long = "x".repeat(200);
    vec![
        seed("one_line", lines(64, b"hello\n")),
        seed("crlf", lines(64, b"one\r\ntwo\n")),
        seed("many", lines(20, b"a\nbb\nccc\n\n\ndddd\n")),
        seed("unterminated_tail", lines(64, b"done\npartial")),
        seed("empty_lines", lines(8, b"\n\n\n")),
        seed("lone_cr", lines(16, b"a\rb\n\r\n\r")),
        seed("exactly_max", lines(5, b"12345\n")),
        seed("one_over_max", lines(5, b"123456\n")),
        seed("max_with_cr", lines(5, b"12345\r\n")),
        seed("max_zero", lines(0, b"\nx\n")),
        seed("long_line", lines(255, format!("{long}\nshort\n").as_bytes())),
        seed(
            "json_lines",
            lines(
                128,
                b"{\"type\":\"login\",\"client_name\":\"t\",\"room_id\":9}\n{\"type\":\"say\",\"to_client_id\":\"all\",\"content\":\"hi\"}\n",
            ),
        ),
        seed("utf8_lines", lines(64, "客服\n😀\r\n".as_bytes())),
        seed("binary_bytes", lines(32, &[0, 255, 10, 13, 10, 128, 10])),
        seed("only_newline", lines(1, b"\n")),
        seed("no_newline", lines(64, b"never terminated")),
        seed("crlf_split_chunks", lines(6, b"ab\r\ncd\r\nef\r\n")),
        seed("long_then_short", lines(3, b"abcdef\nab\n")),
        seed("trailing_cr_only", lines(64, b"x\r")),
        seed("nul_in_line", lines(64, b"a\0b\n")),
        seed("text_protocol_say", lines(200, "{\"type\":\"say\",\"content\":\"客服\"}\r\n".as_bytes())),
    ]
}
