//! Writes the committed seed corpora, `fuzz/seeds/<target>/<name>`, for every fuzz target.
//!
//!     cd fuzz && cargo run --example gen_seeds            # rewrites seeds/ in place
//!
//! Seeds are small, meaningful inputs the fuzzer mutates from instead of starting from nothing:
//! real upgrade requests, masked and unmasked, fragmented and control WebSocket frames, text
//! lines, UTF-8 edge cases, and one encoded bus message of every kind (made with the codec
//! itself, so they stay valid when the wire format changes: rerun this program).
//!
//! Input layouts follow the targets: `ws_decoder`, `text_lines` and `utf8` read their first
//! byte as a parameter (chunk size; `text_lines` also the line limit), the rest is the stream.
//!
//! One module per protocol family: `http`, `websocket` (frames, deflate, extensions, UTF-8),
//! `text`, `bus` (bus, cluster and hand-over wire formats), `gateway` and `tls`.

mod bus;
mod gateway;
mod http;
mod text;
mod tls;
mod websocket;

use bus::{bus_wire, cluster_batch, handover_state};
use gateway::{gateway_frame, php_serialize, register_line};
use http::http_request;
use std::path::{Path, PathBuf};
use text::text_lines;
use tls::tls_record;
use websocket::{utf8, ws_decoder, ws_decoder_deflate, ws_extensions, ws_inflate};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let mut n = 0;
    for (target, seeds) in [
        ("http_request", http_request()),
        ("ws_decoder", [ws_decoder(), ws_decoder_deflate()].concat()),
        ("text_lines", text_lines()),
        ("utf8", utf8()),
        ("ws_extensions", ws_extensions()),
        ("ws_inflate", ws_inflate()),
        ("bus_wire", bus_wire()),
        ("cluster_batch", cluster_batch()),
        ("handover_state", handover_state()),
        ("gateway_frame", gateway_frame()),
        ("php_serialize", php_serialize()),
        ("register_line", register_line()),
        ("tls_record", tls_record()),
    ] {
        let dir = root.join(target);
        // Start clean so a renamed seed does not linger.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir seeds");
        for (name, bytes) in seeds {
            write(&dir, &name, &bytes);
            n += 1;
        }
    }
    println!("wrote {n} seeds under {}", root.display());
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

type Seeds = Vec<(String, Vec<u8>)>;

fn seed(name: &str, bytes: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
    (name.to_string(), bytes.into())
}
