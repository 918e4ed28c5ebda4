//! The HTTP calls abuse goes for first, with their limits: the agent login (password
//! guessing: back-off per address and per account, logged failures, argon2 on its own
//! thread) and uploads (disk: who may upload, per-token, per-address and per-business
//! quotas, metadata stripped).

use super::auth::{Claims, Role as TokenRole};
use super::done::{HttpCall, LoginTry};
use super::http::{bearer_claims, error, json, limited};
use super::limits::{self, Limit, Limited};
use super::login;
use super::shared::{business, Shared};
use super::upload::{self, Refused, Stored, Uploader};
use super::wire::Code;
use super::{ClientId, Outcome};
use crate::api::{Ctx, HttpOutcome};
use crate::protocol::http::request::Request;
use crate::protocol::http::response::Response;
use crate::store::tenancy::AgentRole;
use crate::store::{now_ms, valid_id, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct AgentLoginReq {
    bid: String,
    agent_id: String,
    password: String,
}

#[derive(Serialize)]
struct AgentLoginResp<'a> {
    token: &'a str,
    expires_at: i64,
    bid: &'a str,
    agent_id: &'a str,
    name: &'a str,
    /// `admin` or `agent` (the console shows its settings area to admins).
    role: AgentRole,
}

#[derive(Serialize)]
struct UploadResp<'a> {
    url: &'a str,
    mime: &'a str,
    bytes: usize,
}

const BAD_LOGIN: &str = "wrong bid, agent id or password";

/// The answer to a stored upload.
pub(super) fn uploaded(s: &Stored) -> Response {
    json(
        200,
        &UploadResp {
            url: &format!("{}{}", upload::URL_PREFIX, s.name),
            mime: s.kind.mime(),
            bytes: s.bytes,
        },
    )
}

/// The answer to an upload the store thread refused.
pub(super) fn upload_refused(r: Refused) -> Response {
    match r {
        Refused::NoConversation => error(
            403,
            Code::NotLoggedIn,
            "send a message first: images go into an open conversation",
        ),
        Refused::BadImage(e) => error(415, Code::Invalid, &format!("not a valid image: {e}")),
        Refused::Quota(retry) => limited(&Limited {
            limit: Limit::UploadBusiness,
            retry,
        }),
    }
}

/// `POST /api/agent/login`: limits first, then the password check on the login thread.
pub(super) fn agent_login(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    conn: ClientId,
    req: &Request,
) -> HttpOutcome {
    // Browsers say who is asking: the console is served by kefu itself, so a login sent
    // by another site's page is refused before it costs a guess (a simple `text/plain`
    // POST needs no preflight, and no CORS header alone would stop it being sent).
    if matches!(
        req.header("sec-fetch-site"),
        Some("cross-site" | "same-site")
    ) {
        return HttpOutcome::Respond(error(403, Code::Invalid, "cross-site login refused"));
    }
    let Ok(r) = serde_json::from_slice::<AgentLoginReq>(&req.body) else {
        return HttpOutcome::Respond(error(
            400,
            Code::Invalid,
            "expected {bid, agent_id, password}",
        ));
    };
    if !valid_id(&r.bid) || !valid_id(&r.agent_id) || r.password.len() > 1024 {
        return HttpOutcome::Respond(error(401, Code::LoginFailed, BAD_LOGIN));
    }
    let now = cx.now();
    let ip = limits::ip_key(&sh.client_ip(cx, conn, req));
    let account = format!("{}/{}", r.bid, r.agent_id);
    let l = &mut sh.limits;
    let wait = [
        l.login_ip.check(&ip, now),
        l.login_account.check(&account, now),
    ]
    .into_iter()
    .filter_map(Result::err)
    .max();
    if let Some(retry) = wait {
        return HttpOutcome::Respond(limited(&Limited {
            limit: Limit::Login,
            retry,
        }));
    }
    // Counted as failed until the check says otherwise: attempts still running count
    // too, so a burst of parallel guesses meets the back-off like a sequence does.
    l.login_ip.fail(&ip, now);
    l.login_account.fail(&account, now);
    let (bid, agent_id, key) = (r.bid, r.agent_id, ip.clone());
    let out = sh.submit_http(conn, HttpCall::AgentLogin, business(&bid), move |c| {
        let agent = match login::agent_password(c, &bid, &agent_id, &r.password) {
            Ok(a) => Some(a),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        Ok(Outcome::HttpAgentLogin(Box::new(LoginTry {
            bid,
            agent_id,
            ip,
            agent,
        })))
    });
    if let HttpOutcome::Respond(_) = out {
        // Busy: no password was checked.
        sh.limits.login_ip.uncount(&key);
        sh.limits.login_account.uncount(&account);
    }
    out
}

/// A password check is over: a token, or a logged failure.
pub(super) fn agent_login_done(sh: &mut Shared, cx: &mut Ctx<'_>, t: LoginTry) -> Response {
    let Some(a) = t.agent else {
        if let Some(dropped) = sh.limits.login_log.allow(cx.now()) {
            let more = if dropped > 0 {
                format!(" ({dropped} more not logged)")
            } else {
                String::new()
            };
            crate::warn!(
                "kefu: failed agent login for {}/{} from {}{more}",
                t.bid,
                t.agent_id,
                t.ip
            );
        }
        return error(401, Code::LoginFailed, BAD_LOGIN);
    };
    sh.limits
        .login_account
        .forgive(&format!("{}/{}", t.bid, t.agent_id));
    sh.limits.login_ip.uncount(&t.ip);
    let Some(secret) = &sh.secret else {
        return error(503, Code::Busy, "server not ready");
    };
    let exp = now_ms() + sh.cfg.agent_token_ttl.as_millis() as i64;
    let token = secret.sign(&Claims {
        r: TokenRole::Agent,
        b: a.bid.clone(),
        s: a.agent_id.clone(),
        exp,
        pv: a.pw_ver,
        vf: false,
    });
    json(
        200,
        &AgentLoginResp {
            token: &token,
            expires_at: exp,
            bid: &a.bid,
            agent_id: &a.agent_id,
            name: &a.name,
            role: a.role,
        },
    )
}

/// `POST /api/upload`: an agent, or a visitor with an open conversation (checked by the
/// store thread), within its token's and address's rates; stored stripped of metadata.
pub(super) fn upload(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    conn: ClientId,
    req: &Request,
) -> HttpOutcome {
    let claims = match bearer_claims(sh, req) {
        Ok(c) => c,
        Err(r) => return HttpOutcome::Respond(r),
    };
    if req.body.is_empty() {
        return HttpOutcome::Respond(error(400, Code::Invalid, "empty body"));
    }
    if req.body.len() > sh.cfg.upload_max_bytes {
        return HttpOutcome::Respond(error(413, Code::Invalid, "file too large"));
    }
    let Some(t) = upload::sniff(&req.body) else {
        return HttpOutcome::Respond(error(
            415,
            Code::Invalid,
            "only PNG, JPEG, GIF and WebP images",
        ));
    };
    let now = cx.now();
    let ip = limits::ip_key(&sh.client_ip(cx, conn, req));
    // Keyed by the token's subject: every token of one agent or visitor shares a rate.
    let token_key = format!("{:?}/{}/{}", claims.r, claims.b, claims.s);
    // An agent's token is re-checked against its row on the store thread (revocation).
    let agent_claims = (claims.r == TokenRole::Agent).then(|| claims.clone());
    let who = match claims.r {
        TokenRole::Agent => Uploader::Agent(claims.b),
        TokenRole::Visitor => Uploader::Visitor(claims.b, claims.s),
    };
    let l = &mut sh.limits;
    let ok = limits::take(&mut l.upload_token, Limit::UploadToken, &token_key, now)
        .and_then(|()| limits::take(&mut l.upload_ip, Limit::UploadIp, &ip, now));
    if let Err(l) = ok {
        return HttpOutcome::Respond(limited(&l));
    }
    let body = req.body.clone();
    let dir = sh.data_dir.clone();
    let quota = sh.cfg.upload_business_mib_per_day.saturating_mul(1 << 20);
    sh.submit_http(conn, HttpCall::Upload, business(who.bid()), move |c| {
        if let Some(a) = &agent_claims {
            super::login::check_agent(c, a)?;
        }
        Ok(
            match upload::accept(c, &dir, &who, &body, t, quota, now_ms())? {
                Ok(s) => Outcome::HttpUploaded(s),
                Err(r) => Outcome::HttpUploadRefused(r),
            },
        )
    })
}
