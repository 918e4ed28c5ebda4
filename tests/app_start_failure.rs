//! An app that cannot start says why: `start -d` prints the app's own reason (here the kefu
//! app's store cannot be opened), not just a worker exit status, and leaves nothing running.

mod common;

use common::{alive, Instance};
use std::time::Duration;

#[test]
fn kefu_store_that_cannot_open_makes_start_print_why() {
    let mut inst = Instance::new(1);
    inst.app = "kefu";
    // A regular file where the data directory should be: every open below it fails.
    std::fs::write(inst.dir.join("blocker"), b"not a directory").unwrap();
    let mut args = vec!["start".to_string(), "-d".to_string()];
    args.extend(inst.start_args());
    args.extend(["--data-dir".into(), "blocker/data".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = inst.run(&refs, Duration::from_secs(20));
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
    let mut inst = Instance::new(1);
    inst.app = "bridge";
    std::fs::write(
        inst.dir.join("k.toml"),
        "[bridge]\nbackend_url = \"ftp://example.invalid/\"\n",
    )
    .unwrap();
    let mut args = vec![
        "start".to_string(),
        "-d".to_string(),
        "-c".into(),
        "k.toml".into(),
    ];
    args.extend(inst.start_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = inst.run(&refs, Duration::from_secs(20));
    assert_eq!(out.code, 1, "start must fail: {out:?}");
    assert!(
        out.stderr.contains("app bridge: bridge.backend_url"),
        "the reason must come from the app: {out:?}"
    );
}
