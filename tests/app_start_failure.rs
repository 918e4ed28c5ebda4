//! An app that cannot start says why: `start -d` prints the app's own reason (here the kefu
//! app's store cannot be opened), not just a worker exit status, and leaves nothing running.

mod common;

use common::{alive, Instance};

#[test]
fn kefu_store_that_cannot_open_makes_start_print_why() {
    let inst = Instance::new("kefu", 1, &["websocket"]).args(&["--data-dir", "blocker/data"]);
    // A regular file where the data directory should be: every open below it fails.
    std::fs::write(inst.dir.join("blocker"), b"not a directory").unwrap();
    let out = inst.start_detached();
    assert_eq!(out.code, 1, "start must fail: {out:?}");
    assert!(
        out.stderr.contains("kefu start failed: app kefu:")
            && out.stderr.contains("blocker/data")
            && out.stderr.contains("Not a directory"),
        "the reason must name the app, the path and the error: {out:?}"
    );
    if let Some(pid) = inst.master_pid() {
        assert!(!alive(pid), "no master may be left running");
    }
}

#[test]
fn bridge_with_an_unusable_backend_url_fails_to_start() {
    let inst = Instance::new("bridge", 1, &["websocket"])
        .config("[bridge]\nbackend_url = \"ftp://example.invalid/\"\n");
    let out = inst.start_detached();
    assert_eq!(out.code, 1, "start must fail: {out:?}");
    assert!(
        out.stderr.contains("app bridge: bridge.backend_url"),
        "the reason must come from the app: {out:?}"
    );
}
