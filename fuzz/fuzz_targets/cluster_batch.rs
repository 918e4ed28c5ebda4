//! Fuzz the cluster batch codec (what one node publishes to another through Redis): decode
//! the header and every record of arbitrary bytes; a well-formed prefix of records must
//! re-encode to exactly the bytes it came from, and iteration must end after an error.
#![no_main]

use kefu::cluster::wire::{begin, decode, push, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((h, recs)) = decode(data) else {
        return;
    };
    let mut out = Vec::new();
    begin(&mut out, h);
    let mut failed = false;
    for r in recs {
        assert!(!failed, "a record after an error");
        match r {
            Ok(r) => {
                assert!(r.frame.len() >= 4);
                push(&mut out, r.from, r.from_worker, r.to, r.frame);
            }
            Err(e) => {
                let _ = e.to_string();
                failed = true;
            }
        }
    }
    assert_eq!(&out[..HEADER_LEN], &data[..HEADER_LEN]);
    if !failed {
        assert_eq!(out, data, "re-encoding changed the batch");
    } else {
        assert!(
            data.starts_with(&out),
            "records before the error re-encode as they came"
        );
    }
});
