//! Fuzz the incremental UTF-8 validator: on complete input it must agree with
//! `std::str::from_utf8`, whatever the split points, and it must fail fast.
#![no_main]

use kefu::protocol::websocket::utf8::Utf8Validator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 9) + 1;
    let mut v = Utf8Validator::new();
    let mut fed = 0;
    let mut ok = true;
    for piece in rest.chunks(chunk) {
        fed += piece.len();
        if v.feed(piece).is_err() {
            ok = false;
            // Fail fast: std must agree the prefix fed so far cannot be completed.
            let e = std::str::from_utf8(&rest[..fed]).expect_err("validator rejected valid prefix");
            assert!(e.error_len().is_some(), "rejected a completable prefix");
            break;
        }
    }
    let std_ok = std::str::from_utf8(rest).is_ok();
    assert_eq!(ok && v.is_complete(), std_ok);
    // Whole-input feed agrees too.
    let mut w = Utf8Validator::new();
    assert_eq!(w.feed(rest).is_ok() && w.is_complete(), std_ok);
});
