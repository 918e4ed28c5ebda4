//! Fuzz `parse_request` (pipelined, small limits) and the WebSocket handshake check on its output.
#![no_main]

use kefu::protocol::http::{parse_request, RequestLimits};
use kefu::protocol::websocket::handshake::{check, is_upgrade, response_101, HandshakeConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = RequestLimits {
        max_header_size: 2048,
        max_body_size: 1024,
    };
    let origins = ["http://a.example".to_string()];
    let protos = ["chat".to_string(), "json".to_string()];
    let cfg = HandshakeConfig {
        allowed_origins: &origins,
        subprotocols: &protos,
    };
    let mut pos = 0;
    while let Some(rest) = data.get(pos..) {
        match parse_request(rest, &limits) {
            Ok(Some((req, n))) => {
                assert!(n > 0 && n <= rest.len());
                pos += n;
                let _ = req.keep_alive();
                let _ = req.cookies();
                let _ = req.query_param("id");
                let _ = is_upgrade(&req);
                match check(&req, &cfg) {
                    Ok(acc) => {
                        let _ = response_101(&acc, &[]);
                    }
                    Err(e) => {
                        let _ = e.response();
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = e.status();
                break;
            }
        }
    }
});
