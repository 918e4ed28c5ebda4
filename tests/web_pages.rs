//! The web pages served by the kefu app (src/web): real binary, real HTTP over TCP.
//! Routes answer 200 with the right types and a CSP; unknown paths and traversal attempts 404.

mod common;

use common::server::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Send `raw` verbatim (no client-side path normalisation) and read the answer to EOF.
fn raw(addr: &str, req: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Resp {
        status,
        head,
        body: buf[split + 4..].to_vec(),
    }
}

fn get(addr: &str, path: &str) -> Resp {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

fn start() -> (Server, std::path::PathBuf) {
    let data = std::env::temp_dir().join(format!(
        "kefu-web-{}-{}",
        std::process::id(),
        common::server::free_port()
    ));
    std::fs::create_dir_all(&data).unwrap();
    let s = Server::start(
        "kefu",
        1,
        &["http"],
        &["--data-dir", data.to_str().unwrap()],
    );
    (s, data)
}

#[test]
fn pages_and_assets_are_served_with_csp() {
    let (s, data) = start();
    let a = s.addr(0);
    for (path, ct, frame) in [
        ("/", "text/html", "'none'"),
        ("/console", "text/html", "'none'"),
        ("/chat/shop1", "text/html", "*"),
        ("/chat/demo", "text/html", "*"),
        ("/widget.js", "text/javascript", "'none'"),
        ("/static/common.js", "text/javascript", "'none'"),
        ("/static/visitor.js", "text/javascript", "'none'"),
        ("/static/console.js", "text/javascript", "'none'"),
        ("/static/i18n.js", "text/javascript", "'none'"),
        ("/static/kefu.css", "text/css", "'none'"),
        ("/static/favicon.svg", "image/svg+xml", "'none'"),
    ] {
        let r = get(&a, path);
        assert_eq!(r.status, 200, "{path}");
        let got = r.header("content-type").unwrap_or_default();
        assert!(got.starts_with(ct), "{path}: {got}");
        let csp = r.header("content-security-policy").unwrap_or_default();
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            // Only the page's own origin: the pages hold tokens (docs/security.md).
            "connect-src 'self';",
        ] {
            assert!(csp.contains(part), "{path}: CSP {csp:?} lacks {part}");
        }
        assert!(!csp.contains("ws:"), "{path}: CSP allows any ws: {csp}");
        assert!(
            csp.ends_with(&format!("frame-ancestors {frame}")),
            "{path}: {csp}"
        );
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert!(r.header("cache-control").is_some(), "{path}");
        assert!(!r.body.is_empty(), "{path}");
    }
    let page = String::from_utf8(get(&a, "/chat/shop1").body).unwrap();
    assert!(page.contains("/static/visitor.js"));
    assert!(page.contains("加载更多"));
    // The API still belongs to the kefu app.
    let r = raw(
        &a,
        &format!("POST /api/agent/login HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"),
    );
    assert_eq!(r.status, 400);
    // Revalidation by ETag.
    let tag = get(&a, "/static/kefu.css").header("etag").unwrap();
    let r = raw(
        &a,
        &format!("GET /static/kefu.css HTTP/1.1\r\nHost: {a}\r\nIf-None-Match: {tag}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 304);
    drop(s);
    let _ = std::fs::remove_dir_all(data);
}

#[test]
fn unknown_and_traversal_paths_are_404() {
    let (s, data) = start();
    let a = s.addr(0);
    for path in [
        "/static/nope.js",
        "/static/",
        "/static/visitor.html",
        "/static/../Cargo.toml",
        "/static/..%2fCargo.toml",
        "/static/..%2FCargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/%2e%2e%2fCargo.toml",
        "/static/..%5cCargo.toml",
        "/static/....//Cargo.toml",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/common.js/",
        "/static/common.js%00",
        "/chat/",
        "/chat/../Cargo.toml",
        "/chat/a/b",
        "/chat/%3Cscript%3E",
        "/../Cargo.toml",
        "/Cargo.toml",
        "/web/visitor.js",
    ] {
        let r = get(&a, path);
        assert_eq!(r.status, 404, "{path}");
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("[package]"), "{path} leaked a file");
    }
    drop(s);
    let _ = std::fs::remove_dir_all(data);
}

#[test]
fn first_start_creates_a_demo_login_once() {
    let dir = std::env::temp_dir().join(format!(
        "kefu-web-first-{}-{}",
        std::process::id(),
        common::server::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let port = common::server::free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = |p: &str| dir.join(p).to_str().unwrap().to_string();
    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
            .current_dir(&dir)
            .args(["start", "-d", "--app", "kefu", "--workers", "1"])
            .args(["--listen", &format!("http://{addr}")])
            .args(["--data-dir", &d("data")])
            .args(["--pid-file", &d("k.pid"), "--log-file", &d("k.log")])
            .output()
            .unwrap()
    };
    let stop = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["stop", "--pid-file", &d("k.pid")])
            .output()
            .unwrap()
    };
    let o = start();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}");
    let password = out
        .lines()
        .find_map(|l| l.split_once("one-time login:"))
        .and_then(|(_, rest)| rest.split("password ").nth(1))
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|| panic!("no one-time login in {out:?}"));
    assert!(password.len() >= 12, "{password}");
    assert!(out.contains(&format!("http://{addr}/chat/demo")), "{out}");
    let login = |pw: &str| {
        let body = format!(r#"{{"bid":"demo","agent_id":"admin","password":"{pw}"}}"#);
        raw(
            &addr,
            &format!(
                "POST /api/agent/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .status
    };
    assert_eq!(login(&password), 200);
    assert_eq!(login("wrong"), 401);
    assert_eq!(get(&addr, "/chat/demo").status, 200);
    assert!(stop().status.success());
    // Second start on the same data dir: no new login printed, the first one still works.
    let o = start();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("one-time login"), "{out}");
    assert_eq!(login(&password), 200);
    assert!(stop().status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
