//! Fuzz permessage-deflate negotiation: the input is `Sec-WebSocket-Extensions` header values,
//! one per line. Whatever is agreed must be a window of 8..=15 bits, and our response header
//! must itself parse as a valid permessage-deflate element stating the same window.
#![no_main]

use kefu::protocol::websocket::extensions::{negotiate, parse_extension};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(a) = negotiate(text.split('\n')) else {
        return;
    };
    assert!((8..=15).contains(&a.server_window_bits));
    let resp = a.response();
    let offer = parse_extension(&resp)
        .expect("our response parses")
        .expect("and is permessage-deflate");
    assert!(offer.server_no_context_takeover && offer.client_no_context_takeover);
    if let Some(bits) = offer.server_max_window_bits {
        assert_eq!(bits, a.server_window_bits);
    } else {
        assert_eq!(a.server_window_bits, 15);
    }
});
