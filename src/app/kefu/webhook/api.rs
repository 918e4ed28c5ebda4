//! `GET /api/webhooks` (list), `POST /api/webhooks` (`{url}`: register; the answer holds
//! the signing secret, shown this once) and `POST /api/webhooks/delete` (`{id}`).
//!
//! Who may call: agents of the business that `insight::may_manage` lets in, with their agent
//! token; the business is the token's. An id of another business's endpoint is "not found".
//! A URL is checked when registered (form, and without `webhook_allow_private` no literal
//! private address or `localhost`) and again, after resolving its host, at every delivery.

use super::client::{self, SendError};
use crate::api::HttpOutcome;
use crate::app::kefu::done::HttpCall;
use crate::app::kefu::http::{error, json};
use crate::app::kefu::insight::{agent_claims, managing};
use crate::app::kefu::shared::{business, Shared};
use crate::app::kefu::wire::Code;
use crate::app::kefu::ClientId;
use crate::protocol::http::request::Request;
use crate::store::tenancy::random_hex;
use crate::store::{now_ms, webhooks};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddReq {
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteReq {
    id: i64,
}

#[derive(Serialize)]
struct Added<'a> {
    id: i64,
    url: &'a str,
    secret: &'a str,
}

#[derive(Serialize)]
struct Listed<'a> {
    items: &'a [webhooks::Hook],
}

/// Check a URL to register: its form, and its host when private targets are not allowed.
fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let u = client::parse(url).map_err(|e| e.to_string())?;
    if !allow_private {
        let private = match u.host.parse::<IpAddr>() {
            Ok(ip) => !client::public(ip),
            Err(_) => u.host == "localhost" || u.host.ends_with(".localhost"),
        };
        if private {
            return Err(SendError::BadUrl("a loopback, private or link-local host").to_string());
        }
    }
    Ok(())
}

/// Route the webhook calls; None if `path` is not one.
pub(in crate::app::kefu) fn route(
    sh: &mut Shared,
    conn: ClientId,
    req: &Request,
    path: &str,
) -> Option<HttpOutcome> {
    let call = HttpCall::Webhooks;
    let refuse = |st: u16, code: Code, m: &str| Some(HttpOutcome::Respond(error(st, code, m)));
    match (req.method.as_str(), path) {
        ("GET", "/api/webhooks") | ("POST", "/api/webhooks" | "/api/webhooks/delete") => {}
        (_, "/api/webhooks" | "/api/webhooks/delete") => {
            return refuse(405, Code::Invalid, "method not allowed")
        }
        _ => return None,
    }
    let claims = match agent_claims(sh, req) {
        Ok(c) => c,
        Err(r) => return Some(HttpOutcome::Respond(r)),
    };
    Some(match (req.method.as_str(), path) {
        ("GET", _) => sh.submit_http(conn, call, business(&claims.b), move |c| {
            managing(c, &claims, |a| {
                Ok(json(
                    200,
                    &Listed {
                        items: &webhooks::list(c, &a.bid)?,
                    },
                ))
            })
        }),
        ("POST", "/api/webhooks") => {
            let Ok(r) = serde_json::from_slice::<AddReq>(&req.body) else {
                return refuse(400, Code::Invalid, "expected {url}");
            };
            if let Err(m) = check_url(&r.url, sh.cfg.webhook_allow_private) {
                return refuse(400, Code::Invalid, &m);
            }
            sh.submit_http(conn, call, business(&claims.b), move |c| {
                managing(c, &claims, |a| {
                    let secret = random_hex(32);
                    let id = webhooks::add(c, &a.bid, &r.url, &secret, now_ms())?;
                    Ok(json(
                        200,
                        &Added {
                            id,
                            url: &r.url,
                            secret: &secret,
                        },
                    ))
                })
            })
        }
        _ => {
            let Ok(r) = serde_json::from_slice::<DeleteReq>(&req.body) else {
                return refuse(400, Code::Invalid, "expected {id}");
            };
            sh.submit_http(conn, call, business(&claims.b), move |c| {
                managing(c, &claims, |a| {
                    webhooks::remove(c, &a.bid, r.id)?;
                    Ok(json(200, &serde_json::json!({ "ok": true })))
                })
            })
        }
    })
}
