//! The web pages served by the kefu app (src/web): real binary, real HTTP over TCP.
//! Routes answer 200 with the right types and a CSP; unknown paths and traversal attempts 404.

mod common;

use common::http::{raw as raw_bytes, Answer};
use common::{Instance, SEC};

/// Send `req` verbatim (no client-side path normalisation) and read the answer to EOF.
fn raw(addr: &str, req: &str) -> Answer {
    raw_bytes(addr, req.as_bytes())
}

fn get(addr: &str, path: &str) -> Answer {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

fn start() -> Instance {
    Instance::new("kefu", 1, &["http"]).with_data_dir().start()
}

#[test]
fn pages_and_assets_are_served_with_csp() {
    let s = start();
    let a = s.addr("http");
    for (path, ct, frame) in [
        ("/", "text/html", "'none'"),
        ("/console", "text/html", "'none'"),
        ("/chat/shop1", "text/html", "*"),
        ("/chat/demo", "text/html", "*"),
        ("/widget.js", "text/javascript", "'none'"),
        ("/static/common.js", "text/javascript", "'none'"),
        ("/static/visitor.js", "text/javascript", "'none'"),
        ("/static/console.js", "text/javascript", "'none'"),
        ("/static/console-view.js", "text/javascript", "'none'"),
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
}

#[test]
fn unknown_and_traversal_paths_are_404() {
    let s = start();
    let a = s.addr("http");
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
}

#[test]
fn first_start_creates_a_demo_login_once() {
    // `start -d` prints the one-time login on the terminal that started it.
    let k = Instance::new("kefu", 1, &["http"]).with_data_dir();
    let addr = k.addr("http");
    // A start that fails (port in use) prints no login and creates none ...
    let busy = std::net::TcpListener::bind(&addr).expect("hold the port");
    let o = k.start_detached();
    assert!(!o.ok(), "{o:?}");
    assert!(!o.stdout.contains("one-time login"), "{o:?}");
    drop(busy);
    // ... so the first good start still has one to print.
    let o = k.start_detached();
    let out = o.stdout.clone();
    assert!(o.ok(), "{o:?}");
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
    assert!(k.run(&["stop"], 10 * SEC).ok());
    // Second start on the same data dir: no new login printed, the first one still works.
    let o = k.start_detached();
    assert!(o.ok(), "{o:?}");
    assert!(!o.stdout.contains("one-time login"), "{o:?}");
    assert_eq!(login(&password), 200);
    assert!(k.run(&["stop"], 10 * SEC).ok());
}
