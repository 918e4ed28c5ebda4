//! Issue 11, items 8, 11 and 12, against the real binary: the data dir and database files,
//! the pid, lock and log files and the control socket are private to kefu's user whatever the
//! umask; looser ones are tightened with a warning; planted symlinks are not followed;
//! directories anyone may write to are refused; the control socket refuses other uids.

mod common;

use common::{run_in, wait_until, Instance, KEFU};
use std::fs::Permissions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, Permissions::from_mode(m)).unwrap();
}

/// `kefu start` (foreground) of the kefu app under `umask 000`, through sh because the umask
/// can only be set in the child; stdout goes to `out.txt` in the instance dir.
fn start_foreground_umask0(k: &Instance) -> Child {
    let args: Vec<String> = ["start", "--pid-file", "k.pid", "--data-dir", "data"]
        .iter()
        .map(|s| s.to_string())
        .chain(k.start_args())
        .collect();
    let out = std::fs::File::create(k.dir.join("out.txt")).unwrap();
    let err = std::fs::File::create(k.dir.join("err.txt")).unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(KEFU)
        .args(&args)
        .current_dir(&k.dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let ready = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(k.dir.join("out.txt"))
            .unwrap_or_default()
            .contains("Start success")
    });
    assert!(
        ready,
        "not ready: {}",
        std::fs::read_to_string(k.dir.join("err.txt")).unwrap_or_default()
    );
    child
}

fn kefu_instance() -> Instance {
    Instance::new("kefu", 1, &["text", "websocket"])
}

#[test]
fn files_are_private_whatever_the_umask() {
    let k = kefu_instance();
    let mut child = start_foreground_umask0(&k);
    let data = k.dir.join("data");
    // The workers keep the database open in WAL mode, so its side files exist while running.
    let wal = data.join("kefu.db-wal");
    let shm = data.join("kefu.db-shm");
    assert!(wait_until(Duration::from_secs(10), || wal.exists() && shm.exists()));
    assert_eq!(mode(&data), 0o700, "data dir");
    for f in ["kefu.db", "kefu.db-wal", "kefu.db-shm", "secret.key"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    for f in ["k.pid", "k.pid.lock", "k.pid.sock"] {
        assert_eq!(mode(&k.dir.join(f)), 0o600, "{f}");
    }
    // The master is our child: `kefu stop` would wait for a zombie only we can reap.
    let _ = common::try_signal(child.id() as i32, libc::SIGTERM);
    let _ = child.wait();
}

#[test]
fn looser_data_files_are_tightened_with_a_warning() {
    let k = kefu_instance();
    let data = k.dir.join("data");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o755);
    // An empty file is a new database to SQLite: as a store from an older kefu would be.
    std::fs::write(data.join("kefu.db"), "").unwrap();
    chmod(&data.join("kefu.db"), 0o644);
    let mut a = vec!["start", "-d", "--data-dir", "data"];
    let args = k.start_args();
    a.extend(args.iter().map(String::as_str));
    let o = k.run(&a, Duration::from_secs(30));
    assert!(o.ok(), "{o:?}");
    assert!(
        o.stderr.contains("data was mode 0755") && o.stderr.contains("kefu.db was mode 0644"),
        "{}",
        o.stderr
    );
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("kefu.db")), 0o600);
    // The daemon's own log: created private too.
    assert_eq!(mode(&k.dir.join("k.log")), 0o600);
    assert!(k.run(&["stop"], Duration::from_secs(10)).ok());
}

#[test]
fn planted_symlinks_are_not_followed() {
    let k = Instance::echo(1);
    let victim = k.dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    // The pid file's temporary name: replaced, never written through.
    std::os::unix::fs::symlink(&victim, k.dir.join("k.pid.tmp")).unwrap();
    let o = k.start_detached();
    assert!(o.ok(), "{o:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(k.dir.join("k.pid"))
        .unwrap()
        .file_type()
        .is_file());
    assert!(k.run(&["stop"], Duration::from_secs(10)).ok());

    // The lock and the log: a symlink there makes start fail instead of writing elsewhere.
    for planted in ["k.pid.lock", "k.log"] {
        let k = Instance::echo(1);
        std::fs::write(k.dir.join("victim"), "precious").unwrap();
        std::os::unix::fs::symlink(k.dir.join("victim"), k.dir.join(planted)).unwrap();
        let o = k.start_detached();
        assert!(!o.ok(), "{planted}: {o:?}");
        assert_eq!(
            std::fs::read_to_string(k.dir.join("victim")).unwrap(),
            "precious",
            "{planted}"
        );
    }
}

#[test]
fn world_writable_directories_without_sticky_bit_are_refused() {
    let k = Instance::echo(1);
    let shared = k.dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let mut a = vec!["start".to_string(), "-d".to_string()];
    a.extend(k.start_args());
    a.extend(["--pid-file".into(), "shared/k.pid".into()]);
    let o = run_in(&k.dir, &a, Duration::from_secs(30));
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("world-writable"), "{}", o.stderr);
    assert!(!shared.join("k.pid").exists());

    // The same directory with the sticky bit (like /tmp) is fine.
    chmod(&shared, 0o1777);
    let o = run_in(&k.dir, &a, Duration::from_secs(30));
    assert!(o.ok(), "{o:?}");
    let stop = [
        "stop".to_string(),
        "--pid-file".into(),
        "shared/k.pid".into(),
    ];
    assert!(run_in(&k.dir, &stop, Duration::from_secs(10)).ok());
}

/// Send one control request as uid/gid 65534 (nobody); returns what the master answered.
fn control_request_as_nobody(sock: &Path, line: &str) -> String {
    // A refused client may see its write or its read fail (the master closed first): both
    // mean "no answer".
    let script = "import socket,sys\n\
                  s=socket.socket(socket.AF_UNIX)\n\
                  s.settimeout(10)\n\
                  s.connect(sys.argv[1])\n\
                  out=b''\n\
                  try:\n\
                  \x20   s.sendall(sys.argv[2].encode()+b'\\n')\n\
                  \x20   while True:\n\
                  \x20       b=s.recv(4096)\n\
                  \x20       if not b: break\n\
                  \x20       out+=b\n\
                  except (BrokenPipeError, ConnectionResetError):\n\
                  \x20   pass\n\
                  sys.stdout.write(out.decode())\n";
    let o = Command::new("/usr/bin/python3")
        .args(["-c", script, sock.to_str().unwrap(), line])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn control_socket_refuses_other_uids() {
    // Only root can act as another user here; elsewhere the unit test of peer_uid must do.
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        eprintln!("skipped: needs root to connect as another uid");
        return;
    }
    let k = Instance::echo(1);
    let o = k.start_detached();
    assert!(o.ok(), "{o:?}");
    // Open the socket to everyone, as a lax umask or a careless admin would: the uid check
    // must still refuse the other user.
    chmod(&k.dir, 0o755);
    let sock = k.dir.join("k.pid.sock");
    chmod(&sock, 0o777);
    let reply = control_request_as_nobody(&sock, r#"{"cmd":"stop","graceful":false}"#);
    assert_eq!(reply, "", "another user was answered");
    // Still running and answering its own user.
    assert!(k.status().is_some(), "{}", k.log());
    assert!(
        wait_until(Duration::from_secs(5), || k
            .log()
            .contains("refused a client with uid 65534")),
        "{}",
        k.log()
    );
    assert!(k.run(&["stop"], Duration::from_secs(10)).ok());
}
