//! The web pages kefu serves itself: the visitor chat page (`/chat/<bid>`), the agent console
//! (`/console`), the index (`/`), the embed script (`/widget.js`) and their assets (`/static/*`).
//!
//! Every file is compiled into the binary (`include_bytes!`): nothing is read from disk, so a
//! path can only ever name one of the files in [`ASSETS`] and traversal has nothing to reach.
//! Pages carry a strict Content-Security-Policy (no inline script or style, connections only to
//! this origin, WebSocket included); only the visitor page may be framed (the embed widget).
//! The kefu app answers `/api/*` and `/uploads/*` itself and calls [`serve`] for the rest.

use crate::protocol::http::request::Request;
use crate::protocol::http::response::Response;
use std::sync::OnceLock;

/// One embedded file.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_bytes!(concat!("../../web/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Files under `/static/`, plus the three pages (served at their own routes).
static ASSETS: &[Asset] = &[
    asset!("common.js", JS),
    asset!("i18n.js", JS),
    asset!("visitor.js", JS),
    asset!("console.js", JS),
    asset!("console-view.js", JS),
    asset!("settings.js", JS),
    asset!("admin.js", JS),
    asset!("desk.js", JS),
    asset!("visitor-desk.js", JS),
    asset!("desk.css", CSS),
    asset!("archive.js", JS),
    asset!("archive.css", CSS),
    asset!("reports.js", JS),
    asset!("reports.css", CSS),
    asset!("index.js", JS),
    asset!("widget.js", JS),
    asset!("kefu.css", CSS),
    asset!("admin.css", CSS),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("visitor.html", HTML),
    asset!("console.html", HTML),
    asset!("index.html", HTML),
];

/// Which policy a response gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// The visitor page: any site may frame it (the embed widget).
    Anyone,
    /// Everything else: never framed.
    Nobody,
}

/// The Content-Security-Policy of the pages. `connect-src 'self'` covers `ws:`/`wss:` to the
/// page's own host and port (CSP Level 3, every current browser): the pages hold agent and
/// visitor tokens, so they may talk to no other server, even if a script were injected.
pub(crate) fn csp(frameable: bool) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors {}",
        if frameable { "*" } else { "'none'" }
    )
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// A strong validator per file (FNV-1a 64 of the content), computed once.
fn etag(a: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for &b in a.body {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
                format!("\"{h:016x}\"")
            })
            .collect()
    });
    let i = ASSETS
        .iter()
        .position(|x| std::ptr::eq(x, a))
        .unwrap_or_default();
    tags.get(i).map(String::as_str).unwrap_or("\"0\"")
}

/// Whether `bid` is a valid business id (docs/kefu-protocol.md: 1..64 of `[A-Za-z0-9_.@-]`).
pub(crate) fn valid_bid(bid: &str) -> bool {
    (1..=64).contains(&bid.len())
        && bid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
}

fn security_headers(r: Response, frame: Frame) -> Response {
    let r = r
        .header("Content-Security-Policy", &csp(frame == Frame::Anyone))
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "strict-origin-when-cross-origin");
    if frame == Frame::Nobody {
        r.header("X-Frame-Options", "DENY")
    } else {
        r
    }
}

fn file(req: &Request, a: &'static Asset, frame: Frame, cache: &str) -> Response {
    let tag = etag(a);
    let fresh = req
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut r = if fresh {
        Response::new(304)
    } else {
        Response {
            status: 200,
            headers: vec![("Content-Type".into(), a.mime.into())],
            body: if req.method == "HEAD" {
                Vec::new()
            } else {
                a.body.to_vec()
            },
        }
    };
    r = r.header("Cache-Control", cache).header("ETag", tag);
    security_headers(r, frame)
}

fn not_found() -> Response {
    security_headers(Response::error(404), Frame::Nobody).header("Cache-Control", "no-store")
}

/// Answer a page or asset request, or `None` if the request is not for the web pages
/// (not GET/HEAD, or an `/api/`, `/uploads/` or `/ws` path, which belong to the kefu app).
/// Any other GET path gets an answer: the file, or 404.
pub(crate) fn serve(req: &Request) -> Option<Response> {
    if req.method != "GET" && req.method != "HEAD" {
        return None;
    }
    let path = req.path.as_str();
    if path.starts_with("/api/") || path.starts_with("/uploads/") || path == "/ws" {
        return None;
    }
    // Pages are revalidated on every load (cheap: 304 by ETag); assets likewise, since their
    // names carry no version (there is no build step), so an upgrade is picked up at once.
    const PAGE: &str = "no-cache";
    const ASSET: &str = "public, max-age=0, must-revalidate";
    let page = |name: &str, frame: Frame| find(name).map(|a| file(req, a, frame, PAGE));
    let r = match path {
        "/" | "/index.html" => page("index.html", Frame::Nobody),
        "/console" | "/console/" => page("console.html", Frame::Nobody),
        "/widget.js" => find("widget.js").map(|a| {
            // Loaded cross-site by <script src>: allow it, and keep it fresh-ish.
            file(req, a, Frame::Nobody, "public, max-age=300")
                .header("Access-Control-Allow-Origin", "*")
                .header("Cross-Origin-Resource-Policy", "cross-origin")
        }),
        _ => {
            if let Some(rest) = path.strip_prefix("/chat/") {
                let bid = rest.strip_suffix('/').unwrap_or(rest);
                if valid_bid(bid) {
                    page("visitor.html", Frame::Anyone)
                } else {
                    None
                }
            } else if let Some(name) = path.strip_prefix("/static/") {
                // Exact names only: no decoding, no directories, nothing from disk.
                find(name)
                    .filter(|a| !a.name.ends_with(".html"))
                    .map(|a| file(req, a, Frame::Nobody, ASSET))
            } else {
                None
            }
        }
    };
    Some(r.unwrap_or_else(not_found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Response {
        let req = Request {
            method: "GET".into(),
            path: path.into(),
            minor_version: 1,
            ..Default::default()
        };
        serve(&req).expect("answered")
    }

    fn hdr<'a>(r: &'a Response, k: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn routes() {
        for (p, ct) in [
            ("/", HTML),
            ("/console", HTML),
            ("/chat/shop1", HTML),
            ("/widget.js", JS),
            ("/static/kefu.css", CSS),
            ("/static/visitor.js", JS),
        ] {
            let r = get(p);
            assert_eq!(r.status, 200, "{p}");
            assert_eq!(hdr(&r, "content-type"), Some(ct), "{p}");
            assert!(hdr(&r, "content-security-policy").is_some(), "{p}");
            assert_eq!(hdr(&r, "x-content-type-options"), Some("nosniff"));
        }
        assert!(hdr(&get("/chat/shop1"), "content-security-policy")
            .unwrap()
            .ends_with("frame-ancestors *"));
        assert!(hdr(&get("/console"), "content-security-policy")
            .unwrap()
            .ends_with("frame-ancestors 'none'"));
    }

    #[test]
    fn refuses_everything_else() {
        for p in [
            "/static/../Cargo.toml",
            "/static/..%2fCargo.toml",
            "/static/%2e%2e/Cargo.toml",
            "/static/",
            "/static/visitor.html",
            "/static/nope.js",
            "/chat/",
            "/chat/a/b",
            "/chat/%3Cx%3E",
            "/nope",
        ] {
            assert_eq!(get(p).status, 404, "{p}");
        }
        let mut req = Request {
            method: "GET".into(),
            path: "/api/history".into(),
            ..Default::default()
        };
        assert!(serve(&req).is_none());
        req.path = "/".into();
        req.method = "POST".into();
        assert!(serve(&req).is_none());
    }

    #[test]
    fn etag_revalidates() {
        let r = get("/static/common.js");
        let tag = hdr(&r, "etag").unwrap().to_string();
        let req = Request {
            method: "GET".into(),
            path: "/static/common.js".into(),
            headers: vec![("If-None-Match".into(), tag)],
            ..Default::default()
        };
        let r2 = serve(&req).unwrap();
        assert_eq!(r2.status, 304);
        assert!(r2.body.is_empty());
    }

    #[test]
    fn pages_have_no_inline_code() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".html")) {
            let s = std::str::from_utf8(a.body).unwrap();
            assert!(!s.contains(" style="), "{} has an inline style", a.name);
            assert!(!s.contains("<style"), "{} has a style element", a.name);
            let b = s.as_bytes();
            for (i, _) in s.match_indices(" on") {
                let name: Vec<u8> = b[i + 3..]
                    .iter()
                    .copied()
                    .take_while(u8::is_ascii_lowercase)
                    .collect();
                let after = b.get(i + 3 + name.len()).copied();
                assert!(
                    name.is_empty() || after != Some(b'='),
                    "{} has an inline handler",
                    a.name
                );
            }
            for (i, _) in s.match_indices("<script") {
                assert!(
                    s[i..].starts_with("<script src="),
                    "{} has an inline script",
                    a.name
                );
            }
        }
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let s = std::str::from_utf8(a.body).unwrap();
            assert!(!s.contains("innerHTML"), "{} uses innerHTML", a.name);
            assert!(!s.contains("insertAdjacentHTML"), "{}", a.name);
            assert!(!s.contains("document.write"), "{}", a.name);
            // The WebSocket URL is never taken from the page URL (the browser suite checks
            // the behaviour; this catches the obvious regression early).
            assert!(!s.contains("get(\"ws\")"), "{} reads ?ws=", a.name);
            assert!(!s.contains("new WebSocket(q"), "{}", a.name);
        }
    }
}
