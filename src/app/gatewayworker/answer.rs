//! Carrying out an [`Op`] on this worker's own clients, and answering queries in PHP's
//! `serialize()` format.
//!
//! Each kefu worker is one GatewayWorker gateway: GatewayClient sends group, uid and broadcast
//! commands to every gateway and adds up their answers, so a worker delivers to and reports
//! on its local clients only (never through the bus, which would deliver twice).

use super::msg::{ConnNo, Op, Query, Select};
use super::Local;
use crate::api::{ClientId, Ctx, Payload};
use crate::protocol::gateway::frame::encode_reply;
use crate::protocol::php::{self, Key, Php};
use std::collections::HashSet;

/// What goes back to the inner peer after an op: nothing, or an answer.
pub(super) fn run(
    cx: &mut Ctx<'_>,
    local: &Local,
    op: Op,
) -> Option<(super::msg::LinkKey, Vec<u8>)> {
    match op {
        Op::Send { conn, body, raw } => {
            if let Some(c) = local.client(conn) {
                deliver(cx, &[c], &body, raw);
            }
        }
        Op::SendAll {
            only,
            exclude,
            body,
            raw,
        } => {
            let exclude: HashSet<ConnNo> = exclude.into_iter().collect();
            let to: Vec<ClientId> = match only {
                Some(list) => list
                    .into_iter()
                    .filter(|n| !exclude.contains(n))
                    .filter_map(|n| local.client(n))
                    .collect(),
                None => local
                    .iter()
                    .filter(|(n, _)| !exclude.contains(n))
                    .map(|(_, c)| c)
                    .collect(),
            };
            deliver(cx, &to, &body, raw);
        }
        Op::SendUid { uids, body, raw } => {
            let mut to = Vec::new();
            for u in &uids {
                to.extend(
                    cx.get_client_id_by_uid(u)
                        .into_iter()
                        .filter(|c| local.conn(*c).is_some()),
                );
            }
            deliver(cx, &to, &body, raw);
        }
        Op::SendGroup {
            groups,
            exclude,
            body,
            raw,
        } => {
            let exclude: HashSet<ConnNo> = exclude.into_iter().collect();
            let mut seen = HashSet::new();
            let mut to = Vec::new();
            for g in &groups {
                for c in cx.get_client_id_list_by_group(g) {
                    // A client in two of the groups gets the message once per group in
                    // GatewayWorker too; kefu sends it once.
                    if local.conn(c).is_some_and(|n| !exclude.contains(&n)) && seen.insert(c) {
                        to.push(c);
                    }
                }
            }
            deliver(cx, &to, &body, raw);
        }
        Op::Kick { conn, last } => {
            if let Some(c) = local.client(conn) {
                let _ = cx.close_client(c, last.as_deref().map(payload));
            }
        }
        Op::Destroy { conn } => {
            if let Some(c) = local.client(conn) {
                let _ = cx.destroy_client(c);
            }
        }
        Op::Session { conn, data, merge } => {
            let c = local.client(conn)?;
            let map = if data.is_empty() {
                Some(serde_json::Map::new())
            } else {
                php::unserialize(&data, php::Limits::SESSION)
                    .ok()
                    .and_then(|v| php::session_to_map(&v).ok())
            };
            match map {
                Some(m) if merge => {
                    let _ = cx.update_session(c, m);
                }
                Some(m) => {
                    let _ = cx.set_session(c, m);
                }
                None => crate::warn!(
                    "gatewayworker: session for {} is not a UTF-8 PHP array; ignored",
                    local.text_id(conn)
                ),
            }
        }
        Op::BindUid { conn, uid } => {
            if let Some(c) = local.client(conn) {
                let _ = cx.bind_uid(c, &uid);
            }
        }
        Op::UnbindUid { conn } => {
            if let Some(c) = local.client(conn) {
                let _ = cx.unbind_uid(c);
            }
        }
        Op::Join { conn, group } => {
            if let Some(c) = local.client(conn) {
                let _ = cx.join_group(c, &group);
            }
        }
        Op::Leave { conn, group } => {
            if let Some(c) = local.client(conn) {
                let _ = cx.leave_group(c, &group);
            }
        }
        Op::Ungroup { group } => {
            // Local members only: every gateway gets this command.
            for c in cx.get_client_id_list_by_group(&group) {
                if local.conn(c).is_some() {
                    let _ = cx.leave_group(c, &group);
                }
            }
        }
        Op::Query { link, q } => {
            let v = query(cx, local, q);
            let mut ser = Vec::new();
            match v {
                Answer::Value(v) => php::serialize(&v, &mut ser),
                Answer::Raw(b) => ser = b,
            }
            let mut out = Vec::with_capacity(ser.len() + 4);
            encode_reply(&mut out, &ser);
            return Some((link, out));
        }
    }
    None
}

enum Answer {
    Value(Php),
    /// Already serialized (a stored session).
    Raw(Vec<u8>),
}

/// A send to local clients: framed by each client's protocol, or with `raw` written as it is
/// (the BusinessWorker built the frame itself, as GatewayWorker's `send($body, true)`).
fn deliver(cx: &mut Ctx<'_>, to: &[ClientId], body: &[u8], raw: bool) {
    if raw {
        cx.send_raw_to_local(to, body);
    } else {
        cx.send_to_clients(to, payload(body));
    }
}

fn payload(b: &[u8]) -> Payload<'_> {
    match std::str::from_utf8(b) {
        Ok(s) => Payload::Text(s),
        Err(_) => Payload::Binary(b),
    }
}

fn int(n: ConnNo) -> Key {
    Key::Int(i64::from(n))
}

fn list(items: impl IntoIterator<Item = Php>) -> Php {
    Php::Array(
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Key::Int(i as i64), v))
            .collect(),
    )
}

/// A client's session as GatewayWorker keeps it: serialized, or "" for none.
fn session_bytes(cx: &Ctx<'_>, c: ClientId) -> Vec<u8> {
    match cx.get_session(c) {
        Some(m) if !m.is_empty() => php::serialize_session(m).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn local_members(cx: &Ctx<'_>, local: &Local, group: &str) -> Vec<(ConnNo, ClientId)> {
    let mut v: Vec<_> = cx
        .get_client_id_list_by_group(group)
        .into_iter()
        .filter_map(|c| Some((local.conn(c)?, c)))
        .collect();
    v.sort_unstable();
    v
}

fn query(cx: &Ctx<'_>, local: &Local, q: Query) -> Answer {
    let sessions = |members: Vec<(ConnNo, ClientId)>| {
        Php::Array(
            members
                .into_iter()
                .map(|(n, c)| (int(n), Php::Str(session_bytes(cx, c))))
                .collect(),
        )
    };
    Answer::Value(match q {
        Query::AllSessions => sessions(local.sorted()),
        Query::SessionsByGroup(g) => sessions(local_members(cx, local, &g)),
        Query::CountByGroup(g) if g.is_empty() => Php::Int(local.len() as i64),
        Query::CountByGroup(g) => Php::Int(local_members(cx, local, &g).len() as i64),
        Query::IsOnline(n) => Php::Int(i64::from(local.client(n).is_some())),
        Query::ByUid(u) => list(by_uid(cx, local, &u)),
        Query::BatchByUid(uids) => Php::Array(
            uids.iter()
                .map(|u| (Key::from_bytes(u.as_bytes()), list(by_uid(cx, local, u))))
                .collect(),
        ),
        Query::GroupIds => list(
            cx.get_all_group_id_list()
                .into_iter()
                .filter(|g| !local_members(cx, local, g).is_empty())
                .map(|g| Php::Str(g.into_bytes())),
        ),
        Query::BatchCountByGroup(groups) => Php::Array(
            groups
                .iter()
                .map(|g| {
                    let n = local_members(cx, local, g).len() as i64;
                    (Key::from_bytes(g.as_bytes()), Php::Int(n))
                })
                .collect(),
        ),
        Query::Session(n) => {
            return match local.client(n) {
                None => Answer::Value(Php::Null),
                Some(c) => match session_bytes(cx, c) {
                    b if b.is_empty() => Answer::Value(Php::Array(Vec::new())),
                    b => Answer::Raw(b),
                },
            }
        }
        Query::Select(s) => select(cx, local, &s),
    })
}

fn by_uid(cx: &Ctx<'_>, local: &Local, uid: &str) -> Vec<Php> {
    let mut v: Vec<ConnNo> = cx
        .get_client_id_by_uid(uid)
        .into_iter()
        .filter_map(|c| local.conn(c))
        .collect();
    v.sort_unstable();
    v.into_iter().map(|n| Php::Int(i64::from(n))).collect()
}

fn select(cx: &Ctx<'_>, local: &Local, s: &Select) -> Php {
    let chosen: Vec<(ConnNo, ClientId)> = match &s.filter {
        None => local.sorted(),
        Some(f) => {
            let mut seen = HashSet::new();
            let mut v = Vec::new();
            for g in &f.groups {
                v.extend(local_members(cx, local, g));
            }
            for u in &f.uids {
                v.extend(
                    cx.get_client_id_by_uid(u)
                        .into_iter()
                        .filter_map(|c| Some((local.conn(c)?, c))),
                );
            }
            v.extend(f.conns.iter().filter_map(|&n| Some((n, local.client(n)?))));
            v.retain(|(n, _)| seen.insert(*n));
            v
        }
    };
    Php::Array(
        chosen
            .into_iter()
            .map(|(n, c)| {
                let info = cx.client_info(c);
                let fields = s
                    .order
                    .iter()
                    .map(|f| {
                        let v = match f.as_str() {
                            "uid" if s.uid => info
                                .and_then(|i| i.uid.clone())
                                .map_or(Php::Null, |u| Php::Str(u.into_bytes())),
                            "groups" if s.groups => match info {
                                Some(i) if !i.groups.is_empty() => Php::Array(
                                    i.groups
                                        .iter()
                                        .map(|g| {
                                            let k = Key::from_bytes(g.as_bytes());
                                            (k, Php::Str(g.clone().into_bytes()))
                                        })
                                        .collect(),
                                ),
                                _ => Php::Null,
                            },
                            "session" if s.session => Php::Str(session_bytes(cx, c)),
                            _ => Php::Null,
                        };
                        (Key::from_bytes(f.as_bytes()), v)
                    })
                    .collect();
                (int(n), Php::Array(fields))
            })
            .collect(),
    )
}
