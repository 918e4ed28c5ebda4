//! Issue 11, item 14, against the real binary: `kefu agent add|passwd` never take a password on
//! the command line (visible in `ps`), read it from stdin when it is not a terminal, refuse
//! empty and short ones, and `--random` generates one.

mod common;

use common::http::http_json;
use common::{Instance, KEFU};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Run `kefu <args> --data-dir data` with `stdin`; (exit code, stdout, stderr).
fn run(data: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(KEFU)
        .args(args)
        .args(["--data-dir", data.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may refuse before reading: a broken pipe is fine then.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const ADD: &[&str] = &[
    "agent", "add", "--bid", "shop", "--id", "alice", "--name", "A",
];
const PASSWD: &[&str] = &["agent", "passwd", "--bid", "shop", "--id", "alice"];

fn with(base: &[&'static str], extra: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(extra).copied().collect()
}

/// Agents listed in the store.
fn agents(data: &Path) -> String {
    run(data, &["agent", "list"], "").1
}

#[test]
fn passwords_never_come_from_the_command_line_and_are_not_trivial() {
    // The instance's private directory holds the data dir; the server starts on it below.
    let inst = Instance::new("kefu", 1, &["websocket"]).with_data_dir();
    let data = inst.data_dir();

    // On the command line: refused, nothing stored.
    let (code, _, err) = run(&data, &with(ADD, &["--password", "long-enough-pw"]), "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--password is not accepted"), "{err}");
    assert!(!agents(&data).contains("alice"));

    // Empty, missing and short passwords on stdin: refused, nothing stored.
    for (input, why) in [
        ("\n", "empty password"),
        ("", "no password on stdin"),
        ("short7!\n", "at least 8 characters"),
    ] {
        let (code, _, err) = run(&data, ADD, input);
        assert_eq!(code, 1, "{input:?}: {err}");
        assert!(err.contains(why), "{input:?}: {err}");
        assert!(!agents(&data).contains("alice"), "{input:?}");
    }

    // One line of stdin (the default when stdin is not a terminal, and --password-stdin).
    let (code, out, err) = run(&data, ADD, "first-password\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("first-password"),
        "the password was echoed: {out}"
    );
    let (code, _, err) = run(&data, &with(PASSWD, &["--password-stdin"]), "\n");
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run(&data, &with(PASSWD, &["--password-stdin"]), "second-pw\n");
    assert_eq!(code, 0, "{err}");

    // The password set last is the one that logs in.
    let k = inst.start();
    let login = |pw: &str| {
        http_json(
            &k.addr("websocket"),
            "POST",
            "/api/agent/login",
            &[],
            json!({"bid":"shop","agent_id":"alice","password":pw})
                .to_string()
                .as_bytes(),
        )
        .0
    };
    assert_eq!(login("second-pw"), 200);
    assert_eq!(login("first-password"), 401);

    // --random: generated, printed once, works.
    let (code, out, err) = run(&data, &with(PASSWD, &["--random"]), "");
    assert_eq!(code, 0, "{err}");
    let pw = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("printed password")
        .to_string();
    assert!(pw.len() >= 8, "{pw}");
    assert_eq!(login(&pw), 200);
}
