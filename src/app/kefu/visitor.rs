//! Visitor connections: login, and what a visitor hears once logged in (free functions over
//! the app's [`Shared`] state).

use super::auth::Role as TokenRole;
use super::done::Outcome;
use super::limits::{self, Limit};
use super::login::{self, Ident, Meta, VisitorIn};
use super::presence::{online_agents, visitor_presence, visitors_group};
use super::push::{clip, clip_resume, send};
use super::request::{self, Me, Refusal, Req, Side};
use super::shared::{business, Role, Shared};
use super::state::ConvState;
use super::wire::{self, Out, Resume, VisitorLoginIn};
use super::{agent_uid, ClientId};
use crate::api::Ctx;
use crate::store::{now_ms, valid_id};

/// A visitor's WebSocket login: by our token (checked here), an integrator-signed
/// identity (checked by the store against the business secret), or anonymous.
pub(super) fn login(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    rq: &Req,
    v: VisitorLoginIn,
) -> Result<(), Refusal> {
    let ident = match (v.token, v.visitor_id, v.ts, v.sig) {
        (Some(t), _, _, _) => sh
            .verify_token(&t, TokenRole::Visitor)
            .map(Ident::Token)
            .map_err(|m| Refusal::Login(m.into()))?,
        (None, Some(visitor_id), Some(ts), Some(sig)) => Ident::Signed {
            visitor_id,
            name: v.name.clone().unwrap_or_default(),
            ts,
            sig,
        },
        (None, None, None, None) => Ident::Anonymous,
        _ => {
            return Err(Refusal::Login(
                "identity needs visitor_id, ts and sig".into(),
            ))
        }
    };
    let Some(bid) = v
        .bid
        .map(wire::StrOrNum::into_string)
        .filter(|b| valid_id(b))
    else {
        return Err(Refusal::Login("bid is required".into()));
    };
    let (ip, user_agent) = sh
        .conns
        .get(&rq.id)
        .map(|c| (c.ip.clone(), c.user_agent.clone()))
        .unwrap_or_default();
    if matches!(ident, Ident::Anonymous) {
        // Each anonymous login creates a visitor row: limited per address.
        let key = limits::ip_key(&ip);
        limits::take(
            &mut sh.limits.visitor_new,
            Limit::VisitorNew,
            &key,
            cx.now(),
        )
        .map_err(Refusal::Limited)?;
    }
    let dept = match v.dept.filter(|d| !d.is_empty()) {
        Some(d) if !valid_id(&d) => return Err(Refusal::Login("bad dept".into())),
        d => d,
    };
    let meta = Meta {
        ip,
        user_agent,
        page_url: clip(v.page_url.unwrap_or_default(), 1024),
        referrer: clip(v.referrer.unwrap_or_default(), 1024),
        name: clip(v.name.unwrap_or_default().trim().to_string(), 64),
        dept,
    };
    sh.set_role(rq.id, Role::Pending);
    let max_age = sh.cfg.identity_max_age.as_secs() as i64;
    let resume = clip_resume(v.resume);
    sh.submit(cx, rq.origin(), business(&bid), move |c| {
        login::visitor(c, &bid, ident, &meta, max_age, now_ms())
            .map(|v| Outcome::VisitorLogin(Box::new(v), resume))
    });
    Ok(())
}

/// The store accepted a visitor's login: bind it and answer it (with its queue place).
pub(super) fn logged_in(
    sh: &mut Shared,
    cx: &mut Ctx<'_>,
    id: ClientId,
    v: VisitorIn,
    resume: Vec<Resume>,
) {
    if !sh.conns.contains_key(&id) {
        // Gone while the store worked: nothing to bind.
        return;
    }
    let Some((token, exp)) = sh.visitor_token(&v) else {
        return;
    };
    let me = Me {
        side: Side::Visitor,
        bid: v.bid.clone(),
        id: v.visitor_id.clone(),
        name: v.name.clone(),
    };
    let first = !cx.is_uid_online(&me.uid());
    if let Some(c) = sh.conns.get_mut(&id) {
        c.dept = v.dept.clone();
    }
    request::bind(sh, cx, id, &me);
    let _ = cx.join_group(id, &visitors_group(&v.bid));
    if first {
        visitor_presence(cx, &v.bid, &v.visitor_id, true, false);
    }
    let agents_online = !online_agents(cx, &v.bid).is_empty();
    let agent_online = v
        .conv
        .as_ref()
        .filter(|c| c.state == ConvState::Active)
        .and_then(|c| c.agent_id.as_deref())
        .is_some_and(|a| cx.is_uid_online(&agent_uid(&v.bid, a)));
    send(
        cx,
        id,
        &Out::VisitorLogin {
            visitor_id: &v.visitor_id,
            token: &token,
            verified: v.verified,
            expires_at: exp,
            conv: v.conv.as_ref(),
            agents_online,
            agent_online,
            dept: v.dept.as_deref(),
        },
    );
    if let (Some(c), Some(pos)) = (&v.conv, v.position) {
        send(
            cx,
            id,
            &Out::Waiting {
                conv_id: c.conv_id,
                position: pos,
                agents_online,
            },
        );
    }
    request::resume(sh, cx, id, &me, resume);
}
