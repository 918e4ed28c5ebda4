//! The real PHP GatewayWorker stack for tests: where its unmodified libraries are, our PHP
//! launchers (tests/php), a BusinessWorker or GatewayClient process group killed on drop, the
//! `[gatewayworker]` config that makes kefu the Register, and a text client of the example
//! Events.php.

use super::wait_for;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// The `vendor` folder of the unmodified PHP stack (workerman/workerman, gateway-worker,
/// gatewayclient): `$KEFU_GW_PEER/vendor` if set (what `.ci/run` installs with composer when
/// the team's copy is absent), else the team's shared folder beside the repository
/// (`../shared/peers/gatewayworker`), else `/work/shared/...`. The launchers are ours
/// (tests/php/*.php); only the libraries come from there.
pub fn find_vendor() -> Option<PathBuf> {
    let has = |p: &PathBuf| {
        p.join("workerman/gateway-worker/src/BusinessWorker.php")
            .is_file()
    };
    if let Some(p) = std::env::var_os("KEFU_GW_PEER") {
        // Named explicitly: a wrong path is an error, not a reason to skip.
        let v = PathBuf::from(p).join("vendor");
        assert!(
            has(&v),
            "KEFU_GW_PEER: {v:?} has no workerman/gateway-worker"
        );
        return Some(v);
    }
    let beside =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/peers/gatewayworker/vendor");
    [
        beside,
        PathBuf::from("/work/shared/peers/gatewayworker/vendor"),
    ]
    .into_iter()
    .find(has)
}

pub fn vendor() -> PathBuf {
    find_vendor().expect("the GatewayWorker PHP stack")
}

/// Whether the PHP stack is here. If not: under CI (`CI=true`) the test fails, since `.ci/run`
/// installs the stack; elsewhere it says loudly that the test did not run. The stack is
/// third-party code, never committed into the repository.
pub fn have_peer(test: &str) -> bool {
    let found = find_vendor().is_some();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: the GatewayWorker PHP stack is missing under CI (.ci/run installs it and sets KEFU_GW_PEER)"
        );
        eprintln!(
            "SKIPPED {test}: the GatewayWorker PHP stack is not here (set KEFU_GW_PEER, or keep it in ../shared/peers/gatewayworker)"
        );
    }
    found
}

/// Our PHP launchers and handlers.
pub fn php_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/php")
}

/// A PHP process group (Workerman's master and its children), killed when dropped.
pub struct Php {
    child: Child,
}

/// A handler in the seeds' style (tests/php/echo/Events.php).
pub fn example_events() -> PathBuf {
    php_dir().join("echo")
}

/// Our handler calling every `Lib\Gateway` method (tests/php/Events.php).
pub fn test_events() -> PathBuf {
    php_dir()
}

impl Php {
    pub fn run(script: &str, envs: &[(&str, String)]) -> Php {
        let mut cmd = Command::new("php");
        cmd.arg(php_dir().join(script))
            .arg("start")
            .env("GW_VENDOR", vendor());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        // Workerman prints handler errors on stdout: kept next to the run files.
        let log =
            std::env::temp_dir().join(format!("kefu-php-{}-{script}.out", std::process::id()));
        let out = std::fs::File::create(log).expect("php log");
        let child = cmd
            .process_group(0)
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("php-cli must be installed (apt-get install php-cli)");
        Php { child }
    }

    /// GatewayWorker's own BusinessWorker named `name`, running the Events class in `events`.
    pub fn business(register: &str, run: &std::path::Path, events: PathBuf, name: &str) -> Php {
        Php::run(
            "business_worker.php",
            &[
                ("GW_REGISTER", register.to_owned()),
                ("GW_EVENTS_DIR", events.to_str().unwrap().to_owned()),
                ("GW_RUN_DIR", run.join(name).to_str().unwrap().to_owned()),
                ("GW_NAME", name.to_owned()),
            ],
        )
    }

    pub fn kill(&mut self) {
        super::try_signal(-(self.child.id() as i32), 9);
        let _ = self.child.wait();
    }
}

impl Drop for Php {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn config(reg: u16, inner: u16, secret: &str) -> String {
    format!(
        "[gatewayworker]\nlan_ip = \"127.0.0.1\"\nstart_port = {inner}\n\
         register_address = [\"127.0.0.1:{reg}\"]\nregister_listen = \"127.0.0.1:{reg}\"\n\
         secret_key = \"{secret}\"\n"
    )
}

/// A text client that got its `init` greeting (retried until a BusinessWorker is linked: until
/// then kefu closes clients, as GatewayWorker does). Returns the client and its id.
pub fn text_client(addr: &str) -> (BufReader<TcpStream>, String) {
    wait_for(Duration::from_secs(20), || {
        let s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
        let id = v[1]["client_id"].as_str()?.to_owned();
        Some((r, id))
    })
    .expect("a text client greeted through the PHP BusinessWorker")
}

pub fn say(c: &mut BufReader<TcpStream>, line: &str) -> String {
    c.get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
    let mut got = String::new();
    c.read_line(&mut got).unwrap();
    got.trim_end().to_owned()
}

/// Like [`say`], but a lost message (no answer within the read timeout) is `None`.
pub fn try_say(c: &mut BufReader<TcpStream>, line: &str) -> Option<String> {
    c.get_mut().write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut got = String::new();
    match c.read_line(&mut got) {
        Ok(n) if n > 0 => Some(got.trim_end().to_owned()),
        _ => None,
    }
}

pub fn hear(c: &mut BufReader<TcpStream>) -> String {
    let mut got = String::new();
    c.read_line(&mut got).unwrap();
    got.trim_end().to_owned()
}

/// One GatewayClient call through PHP's own library; its `{"ok":..,"result":..}`.
pub fn gateway_client(register: &str, method: &str, args: serde_json::Value) -> serde_json::Value {
    let out = Command::new("timeout")
        .args(["20", "php"])
        .arg(php_dir().join("gateway_client.php"))
        .env("GW_VENDOR", vendor())
        .args([register, method, &args.to_string()])
        .output()
        .expect("php");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{method}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
