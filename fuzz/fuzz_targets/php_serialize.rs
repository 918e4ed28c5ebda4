//! Fuzz the PHP `unserialize` codec with arbitrary bytes under tight limits: whatever it
//! accepts must serialize back to bytes that unserialize to the same value, and to the same
//! bytes again (one canonical form), and the JSON mapping must settle after one round trip.
#![no_main]

use kefu::protocol::php::{from_json, serialize, to_json, unserialize, Limits, Php};
use libfuzzer_sys::fuzz_target;

fn has_nan(v: &Php) -> bool {
    match v {
        Php::Float(f) => f.is_nan(),
        Php::Array(items) => items.iter().any(|(_, v)| has_nan(v)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_depth: 8,
        max_items: 256,
    };
    let Ok(v) = unserialize(data, limits) else {
        return;
    };
    let mut once = Vec::new();
    serialize(&v, &mut once);
    let again = unserialize(&once, limits).expect("own output must parse");
    if !has_nan(&v) {
        assert_eq!(again, v);
    }
    let mut twice = Vec::new();
    serialize(&again, &mut twice);
    assert_eq!(once, twice);
    // JSON objects are sorted, so an array with int keys out of order may come back as a
    // list: one trip settles the form, a second must not change it.
    if let Ok(j) = to_json(&v) {
        let settled = to_json(&from_json(&j).expect("JSON made from PHP maps back"));
        let settled = settled.expect("and back to JSON");
        let again = to_json(&from_json(&settled).expect("maps back")).expect("to JSON");
        assert_eq!(again, settled);
    }
});
