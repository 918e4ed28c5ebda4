//! The gateway API over HTTP, for business backends in any language (what GatewayClient gives
//! PHP): `POST /gateway/<call>` with a JSON body, served only on `api://` listeners (never on
//! the public web and WebSocket listeners).
//!
//! The worker that receives the request answers it from its own replica of the registry and
//! routes sends over the bus; it never waits on another worker. Answers are
//! `{"ok":true,"result":...}` or `{"ok":false,"error":{"code":...,"message":...}}`.
//!
//! Who may call: whoever presents `gateway.secret_key` (`Authorization: Bearer <key>` or
//! `X-Kefu-Key: <key>`, compared in constant time), from anywhere: there is no loopback
//! exemption, because behind a proxy on the same host every internet client is 127.0.0.1. The
//! config refuses an `api://` listener with a key under 16 bytes. A request must say
//! `Content-Type: application/json` and carry no `Origin` header, so a web page cannot reach
//! the API from a browser (a cross-site `no-cors` fetch can only send `text/plain`, and every
//! browser request from a page carries `Origin` on POST). Uids and groups an app reserves for
//! connections it authenticated itself cannot be bound, joined, left or dissolved here.

use crate::api::Ctx;
use crate::gateway::client_id::ClientId;
use crate::gateway::ApiError;
use crate::protocol::http::request::Request;
use crate::protocol::http::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

mod args;
mod ids;
use args::*;
pub use ids::Ids;

/// Path prefix of every call.
pub const PREFIX: &str = "/gateway/";

/// Whether `path` belongs to the HTTP API (checked before the app's `on_http`).
pub fn is_api_path(path: &str) -> bool {
    path.starts_with(PREFIX)
}

/// Shortest `gateway.secret_key` accepted with an `api://` listener.
pub const MIN_KEY_LEN: usize = 16;

/// Why an API request was refused: HTTP status, stable code, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpApiError {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable code (`bad_json`, `unknown_call`, ...).
    pub code: &'static str,
    /// What went wrong, for humans.
    pub message: String,
}

impl HttpApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        HttpApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<ApiError> for HttpApiError {
    fn from(e: ApiError) -> Self {
        let status = match e {
            ApiError::NotOnline => 404,
            ApiError::TooManyGroups => 409,
            _ => 400,
        };
        HttpApiError::new(status, e.code(), e.to_string())
    }
}

#[derive(Serialize)]
struct OkBody<T: Serialize> {
    ok: bool,
    result: T,
}

#[derive(Serialize)]
struct ErrDetail<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct ErrBody<'a> {
    ok: bool,
    error: ErrDetail<'a>,
}

fn json_response<T: Serialize>(status: u16, body: &T) -> Response {
    let mut r = Response::new(status).header("Content-Type", "application/json");
    // Serializing our own typed bodies cannot fail (string keys, no custom serializers).
    r.body = serde_json::to_vec(body).unwrap_or_default();
    r
}

fn error_response(e: &HttpApiError) -> Response {
    let r = json_response(
        e.status,
        &ErrBody {
            ok: false,
            error: ErrDetail {
                code: e.code,
                message: &e.message,
            },
        },
    );
    match e.status {
        401 => r.header("WWW-Authenticate", "Bearer"),
        405 => r.header("Allow", "POST"),
        _ => r,
    }
}

/// Compare a presented key with the secret in time that depends only on the presented key's
/// length (never on where the first difference is, nor on the secret).
pub fn ct_eq(given: &[u8], secret: &[u8]) -> bool {
    if secret.is_empty() {
        return given.is_empty();
    }
    let mut acc: u8 = 0;
    for (i, &g) in given.iter().enumerate() {
        acc |= g ^ secret[i % secret.len()];
    }
    // black_box: keep the optimizer from turning the fold into an early exit.
    std::hint::black_box(acc) == 0 && given.len() == secret.len()
}

fn check_auth(secret: &str, req: &Request) -> Result<(), HttpApiError> {
    if secret.len() < MIN_KEY_LEN {
        // The config refuses this; kept so that no path can ever serve the API without a key.
        return Err(HttpApiError::new(
            403,
            "forbidden",
            "no usable gateway.secret_key is configured",
        ));
    }
    if req.header("origin").is_some() {
        return Err(HttpApiError::new(
            403,
            "forbidden",
            "requests from web pages (with an Origin header) are refused",
        ));
    }
    let bearer = req
        .header("authorization")
        .and_then(|v| v.trim().strip_prefix("Bearer "))
        .map(str::trim);
    let given = bearer.or_else(|| req.header("x-kefu-key").map(str::trim));
    match given {
        Some(k) if ct_eq(k.as_bytes(), secret.as_bytes()) => Ok(()),
        Some(_) => Err(HttpApiError::new(401, "unauthorized", "wrong key")),
        None => Err(HttpApiError::new(
            401,
            "unauthorized",
            "missing key: send Authorization: Bearer <secret_key> or X-Kefu-Key",
        )),
    }
}

fn sessions_map<'a>(
    ids: &Ids,
    cx: &Ctx<'_>,
    v: impl IntoIterator<Item = (ClientId, &'a Map<String, Value>)>,
) -> BTreeMap<String, &'a Map<String, Value>> {
    v.into_iter().map(|(c, s)| (ids.text(cx, c), s)).collect()
}

fn ok<T: Serialize>(result: T) -> Result<Response, HttpApiError> {
    Ok(json_response(200, &OkBody { ok: true, result }))
}

fn done() -> Result<Response, HttpApiError> {
    ok(Value::Null)
}

/// Whether the JSON media type is declared (parameters such as `charset` allowed).
fn is_json(req: &Request) -> bool {
    req.header("content-type")
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Refuse a change to a uid or group the app reserves for its own authenticated connections.
fn check_name(reserved: &dyn Fn(&str) -> bool, name: &str) -> Result<(), HttpApiError> {
    if reserved(name) {
        return Err(HttpApiError::new(
            403,
            "reserved_name",
            format!("{name:?} is reserved by the app for connections it authenticated itself"),
        ));
    }
    Ok(())
}

/// Answer one API request. `reserved` says which uids and groups the app keeps to itself;
/// `ids`, which client id forms are read and written.
pub fn handle(
    cx: &mut Ctx<'_>,
    secret: &str,
    req: &Request,
    reserved: &dyn Fn(&str) -> bool,
    ids: &Ids,
) -> Response {
    let r = match dispatch(cx, secret, req, reserved, ids) {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    // Which worker answered from its replica: for debugging and for the consistency tests.
    r.header("X-Kefu-Worker", &cx.worker_id().to_string())
        .header("X-Kefu-Incarnation", &format!("{:016x}", cx.incarnation()))
}

fn dispatch(
    cx: &mut Ctx<'_>,
    secret: &str,
    req: &Request,
    reserved: &dyn Fn(&str) -> bool,
    ids: &Ids,
) -> Result<Response, HttpApiError> {
    check_auth(secret, req)?;
    let call = req.path.strip_prefix(PREFIX).unwrap_or("");
    if !KNOWN_CALLS.contains(&call) {
        return Err(HttpApiError::new(
            404,
            "unknown_call",
            format!("no call named {call:?}"),
        ));
    }
    if req.method != "POST" {
        return Err(HttpApiError::new(
            405,
            "method_not_allowed",
            "API calls are POST requests with a JSON body",
        ));
    }
    if !is_json(req) {
        return Err(HttpApiError::new(
            415,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ));
    }
    let body = &req.body;
    match call {
        "send_to_all" => {
            let a: SendToAll = parse_body(body)?;
            let msg = a.message.into_owned()?;
            let exclude = ids.parse_list(cx, a.exclude)?;
            match a.client_ids {
                Some(list) => {
                    let mut list = ids.parse_list(cx, Some(list))?;
                    // Each listed client once, like GatewayWorker's id-keyed arrays.
                    list.sort_unstable();
                    list.dedup();
                    list.retain(|c| !exclude.contains(c));
                    cx.send_to_clients(&list, msg.payload());
                }
                None => cx.send_to_all(msg.payload(), &exclude),
            }
            done()
        }
        "send_to_client" => {
            let a: SendToClient = parse_body(body)?;
            let c = ids.parse(cx, &a.client_id)?;
            let msg = a.message.into_owned()?;
            if !cx.send_to_client(c, msg.payload()) {
                return Err(ApiError::NotOnline.into());
            }
            done()
        }
        "send_to_uid" => {
            let a: SendToUid = parse_body(body)?;
            let uids = names(a.uid, a.uids, "uid")?;
            let msg = a.message.into_owned()?;
            let refs: Vec<&str> = uids.iter().map(String::as_str).collect();
            cx.send_to_uid(&refs, msg.payload());
            done()
        }
        "send_to_group" => {
            let a: SendToGroup = parse_body(body)?;
            let groups = names(a.group, a.groups, "group")?;
            let exclude = ids.parse_list(cx, a.exclude)?;
            let msg = a.message.into_owned()?;
            let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
            cx.send_to_group(&refs, msg.payload(), &exclude);
            done()
        }
        "join_group" => {
            let a: ClientGroup = parse_body(body)?;
            let c = ids.parse(cx, &a.client_id)?;
            let g = a.group.into_string();
            check_name(reserved, &g)?;
            cx.join_group(c, &g)?;
            done()
        }
        "leave_group" => {
            let a: ClientGroup = parse_body(body)?;
            let c = ids.parse(cx, &a.client_id)?;
            let g = a.group.into_string();
            check_name(reserved, &g)?;
            cx.leave_group(c, &g)?;
            done()
        }
        "ungroup" => {
            let a: GroupArg = parse_body(body)?;
            let g = a.group.into_string();
            check_name(reserved, &g)?;
            cx.ungroup(&g)?;
            done()
        }
        "bind_uid" => {
            let a: ClientUid = parse_body(body)?;
            let c = ids.parse(cx, &a.client_id)?;
            let u = a.uid.into_string();
            check_name(reserved, &u)?;
            // Rebinding a client the app bound itself would take its identity away.
            if let Some(old) = cx.get_uid_by_client_id(c) {
                check_name(reserved, old)?;
            }
            cx.bind_uid(c, &u)?;
            done()
        }
        "unbind_uid" => {
            let a: ClientOptUid = parse_body(body)?;
            let c = ids.parse(cx, &a.client_id)?;
            if let Some(old) = cx.get_uid_by_client_id(c) {
                check_name(reserved, old)?;
            }
            cx.unbind_uid(c)?;
            done()
        }
        "is_online" => {
            let a: ClientArg = parse_body(body)?;
            ok(cx.is_online(ids.parse(cx, &a.client_id)?))
        }
        "is_uid_online" => {
            let a: UidArg = parse_body(body)?;
            ok(cx.is_uid_online(&a.uid.into_string()))
        }
        "get_client_id_by_uid" => {
            let a: UidArg = parse_body(body)?;
            ok(ids.texts(cx, cx.get_client_id_by_uid(&a.uid.into_string())))
        }
        "get_uid_by_client_id" => {
            let a: ClientArg = parse_body(body)?;
            let c = ids.parse(cx, &a.client_id)?;
            if !cx.is_online(c) {
                return Err(ApiError::NotOnline.into());
            }
            ok(cx.get_uid_by_client_id(c))
        }
        "get_all_client_id_count" => {
            parse_body::<NoArgs>(body)?;
            ok(cx.get_all_client_id_count())
        }
        "get_all_client_id_list" => {
            parse_body::<NoArgs>(body)?;
            ok(ids.texts(cx, cx.get_all_client_id_list()))
        }
        "get_client_id_count_by_group" => {
            // GatewayWorker: no group (or "") counts every client.
            let a: OptGroupArg = parse_body(body)?;
            match a.group.map(Name::into_string).filter(|g| !g.is_empty()) {
                Some(g) => ok(cx.get_client_id_count_by_group(&g)),
                None => ok(cx.get_all_client_id_count()),
            }
        }
        "get_client_id_list_by_group" => {
            let a: GroupArg = parse_body(body)?;
            ok(ids.texts(cx, cx.get_client_id_list_by_group(&a.group.into_string())))
        }
        "get_all_uid_list" => {
            parse_body::<NoArgs>(body)?;
            ok(cx.get_all_uid_list())
        }
        "get_all_uid_count" => {
            parse_body::<NoArgs>(body)?;
            ok(cx.get_all_uid_count())
        }
        "get_uid_list_by_group" => {
            let a: GroupArg = parse_body(body)?;
            ok(cx.get_uid_list_by_group(&a.group.into_string()))
        }
        "get_uid_count_by_group" => {
            let a: GroupArg = parse_body(body)?;
            ok(cx.get_uid_count_by_group(&a.group.into_string()))
        }
        "get_all_group_id_list" => {
            parse_body::<NoArgs>(body)?;
            ok(cx.get_all_group_id_list())
        }
        "get_all_client_sessions" => {
            // GatewayWorker's getAllClientSessions($group = ''): an optional group filter.
            let a: OptGroupArg = parse_body(body)?;
            match a.group.map(Name::into_string).filter(|g| !g.is_empty()) {
                Some(g) => ok(sessions_map(ids, cx, cx.get_client_sessions_by_group(&g))),
                None => ok(sessions_map(ids, cx, cx.get_all_client_sessions())),
            }
        }
        "get_client_sessions_by_group" => {
            let a: GroupArg = parse_body(body)?;
            ok(sessions_map(
                ids,
                cx,
                cx.get_client_sessions_by_group(&a.group.into_string()),
            ))
        }
        "set_session" | "update_session" => {
            let a: SessionArg = parse_body(body)?;
            let c = ids.parse(cx, &a.client_id)?;
            if call == "set_session" {
                cx.set_session(c, a.session)?;
            } else {
                cx.update_session(c, a.session)?;
            }
            done()
        }
        "get_session" => {
            let a: ClientArg = parse_body(body)?;
            let c = ids.parse(cx, &a.client_id)?;
            match cx.get_session(c) {
                Some(s) => ok(s),
                None => Err(ApiError::NotOnline.into()),
            }
        }
        "close_client" => {
            let a: CloseArg = parse_body(body)?;
            let c = ids.parse(cx, &a.client_id)?;
            let msg = a.message.map(MessageIn::into_owned).transpose()?;
            cx.close_client(c, msg.as_ref().map(Owned::payload))?;
            done()
        }
        "destroy_client" => {
            let a: ClientArg = parse_body(body)?;
            cx.destroy_client(ids.parse(cx, &a.client_id)?)?;
            done()
        }
        _ => Err(HttpApiError::new(
            404,
            "unknown_call",
            format!("no call named {call:?}"),
        )),
    }
}

/// Every call name, GatewayWorker's API in snake_case.
pub const KNOWN_CALLS: &[&str] = &[
    "send_to_all",
    "send_to_client",
    "send_to_uid",
    "send_to_group",
    "join_group",
    "leave_group",
    "ungroup",
    "bind_uid",
    "unbind_uid",
    "is_online",
    "is_uid_online",
    "get_client_id_by_uid",
    "get_uid_by_client_id",
    "get_all_client_id_count",
    "get_all_client_id_list",
    "get_client_id_count_by_group",
    "get_client_id_list_by_group",
    "get_all_uid_list",
    "get_all_uid_count",
    "get_uid_list_by_group",
    "get_uid_count_by_group",
    "get_all_group_id_list",
    "get_all_client_sessions",
    "get_client_sessions_by_group",
    "set_session",
    "update_session",
    "get_session",
    "close_client",
    "destroy_client",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secreT", b"secret"));
        assert!(!ct_eq(b"secret1", b"secret"));
        assert!(!ct_eq(b"secre", b"secret"));
        assert!(!ct_eq(b"", b"secret"));
        // The secret repeated is still the wrong length.
        assert!(!ct_eq(b"secretsecret", b"secret"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn json_content_type_rules() {
        let req = |ct: &str| {
            let raw = format!("POST /gateway/x HTTP/1.1\r\nContent-Type: {ct}\r\n\r\n");
            let limits = crate::protocol::http::request::RequestLimits {
                max_header_size: 4096,
                max_body_size: 0,
            };
            crate::protocol::http::request::parse_request(raw.as_bytes(), &limits)
                .unwrap()
                .unwrap()
                .0
        };
        assert!(is_json(&req("application/json")));
        assert!(is_json(&req("Application/JSON; charset=utf-8")));
        assert!(!is_json(&req("text/plain")));
        assert!(!is_json(&req("application/jsonp")));
        assert!(!is_json(&req(
            "multipart/form-data; boundary=application/json"
        )));
    }

    #[test]
    fn messages_and_names() {
        let m: MessageIn = serde_json::from_str(r#""hi""#).unwrap();
        assert!(matches!(m.into_owned(), Ok(Owned::Text(s)) if s == "hi"));
        let m: MessageIn = serde_json::from_str(r#"{"binary_base64":"AAEC"}"#).unwrap();
        assert!(matches!(m.into_owned(), Ok(Owned::Binary(b)) if b == [0, 1, 2]));
        let m: MessageIn = serde_json::from_str(r#"{"binary_base64":"!!"}"#).unwrap();
        assert!(m.into_owned().is_err());
        let m: MessageIn = serde_json::from_str(r#"{"a":[1,2]}"#).unwrap();
        assert!(matches!(m.into_owned(), Ok(Owned::Text(s)) if s == r#"{"a":[1,2]}"#));
        let n: Names = serde_json::from_str(r#"[1,"b"]"#).unwrap();
        assert_eq!(n.into_vec(), vec!["1", "b"]);
        let n: Names = serde_json::from_str("42").unwrap();
        assert_eq!(n.into_vec(), vec!["42"]);
    }

    #[test]
    fn body_errors_are_classified() {
        let e = parse_body::<ClientArg>(b"{nope").err().unwrap();
        assert_eq!(e.code, "bad_json");
        let e = parse_body::<ClientArg>(b"{\"client_id\":5}").err().unwrap();
        assert_eq!(e.code, "bad_request");
        let e = parse_body::<ClientArg>(b"{\"client_id\":\"a\",\"x\":1}")
            .err()
            .unwrap();
        assert_eq!(e.code, "bad_request");
        assert!(parse_body::<NoArgs>(b"").is_ok());
    }
}
