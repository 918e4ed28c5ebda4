//! The kefu app under test: an [`Instance`] of `--app kefu` with a data dir, a config and
//! agents, and helpers that speak its `method`-tagged WebSocket protocol.

use super::http::http_json;
use super::pg::{pg_available, Pg};
use super::ws::Ws;
use super::Instance;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The password every test agent gets (long enough for `agent add`'s minimum).
pub const AGENT_PW: &str = "pw-agent-test";

/// A running kefu app (foreground, one WebSocket listener; stopped on drop).
pub struct Kefu {
    /// The instance (private dir, data dir, config).
    pub inst: Instance,
    /// Its own PostgreSQL store, under `KEFU_TEST_STORE=postgres` (dropped after `inst`).
    pub pg: Option<Pg>,
}

/// `KEFU_TEST_STORE=postgres` runs every [`Kefu::start`] on a PostgreSQL server of its own
/// instead of the embedded SQLite file (tools/test.sh runs the kefu tests both ways).
pub fn test_store_is_pg() -> bool {
    std::env::var("KEFU_TEST_STORE").is_ok_and(|v| v == "postgres") && pg_available()
}

impl Kefu {
    /// Start with `workers` workers, `[kefu]` settings `kefu_toml`, and agents
    /// `(bid, id, name, max)` all with password [`AGENT_PW`].
    pub fn start(
        workers: usize,
        kefu_toml: &str,
        agents: &[(&str, &str, &str, Option<u32>)],
    ) -> Kefu {
        let pg = test_store_is_pg().then(Pg::start);
        let database = pg
            .as_ref()
            .map(|p| format!("database = \"{}\"\n", p.url()))
            .unwrap_or_default();
        let inst = Instance::new("kefu", workers, &["websocket"])
            .config(&format!("[kefu]\n{database}{kefu_toml}\n"))
            .with_data_dir();
        for (bid, id, name, max) in agents {
            let mut a = vec![
                "agent",
                "add",
                "--bid",
                bid,
                "--id",
                id,
                "--name",
                name,
                "--password-stdin",
            ];
            let m = max.map(|m| m.to_string());
            if let Some(m) = &m {
                a.extend(["--max", m]);
            }
            cli_stdin(&inst, &a, &format!("{AGENT_PW}\n"));
        }
        Kefu {
            inst: inst.start(),
            pg,
        }
    }

    /// Two businesses: `shop` with agents alice (admin) and bob, `other` with zed (admin);
    /// the usual cast for a tenancy check (what alice may do, bob may not, zed never sees).
    pub fn shop_and_other(workers: usize, kefu_toml: &str) -> Kefu {
        let k = Kefu::start(
            workers,
            kefu_toml,
            &[
                ("shop", "alice", "Alice", None),
                ("shop", "bob", "Bob", None),
                ("other", "zed", "Zed", None),
            ],
        );
        k.make_admins(&[("shop", "alice"), ("other", "zed")]);
        k
    }

    /// Give each `(bid, id)` the admin role.
    pub fn make_admins(&self, who: &[(&str, &str)]) {
        for (bid, id) in who {
            self.cli(&["agent", "set", "--bid", bid, "--id", id, "--role", "admin"]);
        }
    }

    /// Run an admin command (`agent ...`, `business ...`) on this instance's config and data
    /// dir; returns stdout (panics on failure).
    pub fn cli(&self, args: &[&str]) -> String {
        cli_stdin(&self.inst, args, "")
    }

    /// [`Kefu::cli`] with `stdin` as the command's input (`agent add|passwd` read the
    /// password from it).
    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> String {
        cli_stdin(&self.inst, args, stdin)
    }

    /// Run an admin command that must fail; returns its stderr (panics if it succeeds).
    pub fn cli_fails(&self, args: &[&str]) -> String {
        let o = cli_output(&self.inst, args, "");
        assert!(!o.status.success(), "kefu {args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// A business's identity-signing secret (`kefu business secret`).
    pub fn business_secret(&self, bid: &str) -> String {
        self.cli(&["business", "secret", "--bid", bid])
            .trim()
            .to_string()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.inst.addr("websocket")
    }

    /// An agent token from `POST /api/agent/login`.
    pub fn agent_token(&self, bid: &str, id: &str) -> String {
        let (st, v) = http_json(
            &self.addr(),
            "POST",
            "/api/agent/login",
            &[],
            json!({"bid":bid,"agent_id":id,"password":AGENT_PW})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(st, 200, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// A logged-in agent connection (login reply returned too).
    pub fn agent(&self, bid: &str, id: &str) -> (Ws, Value) {
        let token = self.agent_token(bid, id);
        let mut ws = Ws::connect(&self.addr(), "/ws");
        ws.send_text(
            &json!({"method":"login","bid":bid,"customer_id":id,"customer_name":id,"token":token})
                .to_string(),
        );
        let v = recv_method(&mut ws, "login");
        (ws, v)
    }

    /// A logged-in anonymous visitor connection.
    pub fn visitor(&self, bid: &str) -> (Ws, Value) {
        let mut ws = Ws::connect(&self.addr(), "/ws");
        ws.send_text(&json!({"method":"visitor_login","bid":bid,"page_url":"https://shop/p","referrer":"https://ref/"}).to_string());
        let v = recv_method(&mut ws, "visitor_login");
        (ws, v)
    }

    /// A visitor connection reusing a token.
    pub fn visitor_with(&self, bid: &str, token: &str, resume: Value) -> (Ws, Value) {
        let mut ws = Ws::connect(&self.addr(), "/ws");
        ws.send_text(
            &json!({"method":"visitor_login","bid":bid,"token":token,"resume":resume}).to_string(),
        );
        let v = recv_method(&mut ws, "visitor_login");
        (ws, v)
    }

    /// `POST /api/admin` with `token` (None: no Authorization header); (status, body).
    pub fn admin(&self, token: Option<&str>, body: Value) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut h = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            h.push(("Authorization", a.as_str()));
        }
        http_json(
            &self.addr(),
            "POST",
            "/api/admin",
            &h,
            body.to_string().as_bytes(),
        )
    }

    /// [`Kefu::admin`] that must succeed; returns the admin view.
    pub fn admin_ok(&self, token: &str, body: Value) -> Value {
        let (st, v) = self.admin(Some(token), body.clone());
        assert_eq!(st, 200, "{body} -> {v}");
        v
    }

    /// A logged-in anonymous visitor that picked department `dept`.
    pub fn visitor_in(&self, bid: &str, dept: &str) -> (Ws, Value) {
        let mut ws = Ws::connect(&self.addr(), "/ws");
        ws.send_text(&json!({"method":"visitor_login","bid":bid,"dept":dept}).to_string());
        let v = recv_method(&mut ws, "visitor_login");
        (ws, v)
    }

    /// Worker pids.
    pub fn worker_pids(&self) -> Vec<i32> {
        self.inst.worker_pids()
    }
}

fn cli_stdin(inst: &Instance, args: &[&str], stdin: &str) -> String {
    let o = cli_output(inst, args, stdin);
    assert!(
        o.status.success(),
        "kefu {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn cli_output(inst: &Instance, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let data = inst.data_dir();
    let conf = inst.dir.join("kefu.toml");
    let mut child = Command::new(super::KEFU)
        .args(args)
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "-c",
            conf.to_str().unwrap(),
        ])
        .current_dir(&inst.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kefu");
    // A command that reads nothing may exit before the write: a broken pipe is fine then.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// Next JSON message (None on timeout/close).
pub fn recv_json(ws: &mut Ws) -> Option<Value> {
    let t = ws.recv_text()?;
    Some(serde_json::from_str(&t).unwrap_or_else(|_| panic!("not json: {t}")))
}

/// Read until a message with `method == m` (others are skipped); panics on timeout.
pub fn recv_method(ws: &mut Ws, m: &str) -> Value {
    loop {
        let v = recv_json(ws).unwrap_or_else(|| panic!("closed/timeout waiting for {m}"));
        if v["method"] == m && v.get("code").is_none() {
            return v;
        }
        if v.get("code").is_some() && v["method"] == m {
            panic!("error instead of {m}: {v}");
        }
    }
}

/// Read until an error frame (has `code`); panics on timeout.
pub fn recv_error(ws: &mut Ws) -> Value {
    loop {
        let v = recv_json(ws).expect("closed/timeout waiting for an error");
        if v.get("code").is_some() {
            return v;
        }
    }
}

/// Read until `pred` holds.
pub fn recv_until(ws: &mut Ws, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
    loop {
        let v = recv_json(ws).unwrap_or_else(|| panic!("closed/timeout waiting for {what}"));
        if pred(&v) {
            return v;
        }
    }
}

/// A visitor's first message: sends `text`, then reads until both its stored copy and its
/// fate (the first `assigned` or `waiting` push, before or after the ack) came; returns
/// (conv_id, fate).
pub fn first_message(v: &mut Ws, text: &str) -> (i64, Value) {
    v.send_text(
        &json!({"method":"send","client_msg_id":"first","kind":"text","text":text}).to_string(),
    );
    let (mut conv, mut fate) = (None, None);
    while conv.is_none() || fate.is_none() {
        let m = recv_json(v).expect("visitor pushes");
        assert!(m.get("code").is_none(), "{m}");
        if m["method"] == "message" && m["text"] == text {
            conv = m["conv_id"].as_i64();
        }
        if fate.is_none() && (m["method"] == "assigned" || m["method"] == "waiting") {
            fate = Some(m);
        }
    }
    (conv.unwrap(), fate.unwrap())
}

/// Read an agent's pushes until the `assigned` of `conv`.
pub fn assigned_to(agent: &mut Ws, conv: i64) -> Value {
    recv_until(agent, "assigned", |m| {
        m["method"] == "assigned" && m["conv"]["conv_id"] == conv
    })
}

/// Everything that arrives within `d`: a listening window for tests that check what does
/// NOT arrive (no event marks "nothing more will come").
pub fn collect(ws: &mut Ws, d: Duration) -> Vec<Value> {
    ws.sock.set_read_timeout(Some(d)).unwrap();
    let end = Instant::now() + d;
    let mut v = Vec::new();
    while Instant::now() < end {
        match ws.recv_text() {
            Some(t) => v.push(serde_json::from_str(&t).unwrap()),
            None => break,
        }
    }
    ws.sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    v
}

/// Send a text message; wait for its ack; returns the seq.
pub fn say(ws: &mut Ws, conv: Option<i64>, cmid: &str, text: &str) -> i64 {
    let mut m = json!({"method":"send","client_msg_id":cmid,"kind":"text","text":text});
    if let Some(c) = conv {
        m["conv_id"] = json!(c);
    }
    ws.send_text(&m.to_string());
    let a = recv_until(ws, "ack", |v| {
        (v["method"] == "ack" || v.get("code").is_some()) && v["client_msg_id"] == cmid
    });
    assert_eq!(a["method"], "ack", "send failed: {a}");
    a["seq"].as_i64().unwrap()
}

/// A well-formed PNG (uploads are parsed to strip metadata): IHDR, IDAT, IEND, 208 bytes.
pub fn tiny_png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (&b"IHDR"[..], vec![0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]),
        (b"IDAT", vec![7u8; 151]),
        (b"IEND", vec![]),
    ] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(kind);
        png.extend_from_slice(&data);
        png.extend_from_slice(&[0; 4]);
    }
    png
}

/// Seconds since the epoch (what an integrator puts in a signed identity).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An integrator's signature of a verified visitor identity that names a department.
pub fn identity_sig_dept(
    key: &str,
    bid: &str,
    vid: &str,
    name: &str,
    ts: i64,
    dept: &str,
) -> String {
    kefu::app::kefu::auth::identity_sig(
        key,
        &kefu::app::kefu::auth::identity_message_dept(bid, vid, name, ts, Some(dept)),
    )
}

/// An integrator's signature of a verified visitor identity of business `bid`.
pub fn identity_sig(key: &str, bid: &str, vid: &str, name: &str, ts: i64) -> String {
    kefu::app::kefu::auth::identity_sig(
        key,
        &kefu::app::kefu::auth::identity_message(bid, vid, name, ts),
    )
}

/// One JSON call to the HTTP API with an optional bearer token (status and JSON answer).
pub fn api(k: &Kefu, method: &str, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    let b = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    http_json(&k.addr(), method, path, &h, &b)
}
