//! The `Op` a command frame from a BusinessWorker or GatewayClient asks for (no I/O).
//!
//! Parameters travel in `ext_data` as GatewayWorker's `Lib\Gateway` writes them: a plain uid or
//! group, or JSON (`{"group":[...],"exclude":{...}}`, a uid list...). Uids and groups may be
//! PHP ints, so JSON numbers are taken as their decimal text.

use super::msg::{ConnNo, Filter, LinkKey, Op, Query, Select};
use crate::protocol::gateway::frame::{Cmd, Frame};
use crate::protocol::php::{self, Limits, Php};
use serde_json::Value;

/// Why a command frame was refused (the connection is then closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmdError {
    /// `ext_data` is not the JSON the command needs.
    BadJson,
    /// The body is not a string and not an accepted serialized value.
    BadBody,
}

/// The op for a command frame; `Ok(None)` for one with nothing to do here (a ping, a client
/// event sent the wrong way, a GatewayWorker no-op such as an empty group name).
pub(crate) fn op_of(f: &Frame<'_>, link: LinkKey) -> Result<Option<Op>, CmdError> {
    let conn = f.head.connection_id;
    let text = || String::from_utf8_lossy(f.ext).into_owned();
    Ok(Some(match f.head.cmd {
        Cmd::SendToOne => Op::Send {
            conn,
            body: body(f)?,
            raw: f.raw(),
        },
        Cmd::SendToAll => {
            let ext = if f.ext.is_empty() {
                Value::Null
            } else {
                json(f.ext)?
            };
            Op::SendAll {
                only: ext.get("connections").map(conn_list),
                exclude: ext.get("exclude").map(conn_list).unwrap_or_default(),
                body: body(f)?,
                raw: f.raw(),
            }
        }
        Cmd::SendToUid => Op::SendUid {
            uids: names(&json(f.ext)?),
            body: body(f)?,
            raw: f.raw(),
        },
        Cmd::SendToGroup => {
            let ext = json(f.ext)?;
            Op::SendGroup {
                groups: ext.get("group").map(names).unwrap_or_default(),
                exclude: ext.get("exclude").map(conn_list).unwrap_or_default(),
                body: body(f)?,
                raw: f.raw(),
            }
        }
        Cmd::Kick => Op::Kick {
            conn,
            last: if f.body_is_scalar() && !f.body.is_empty() {
                Some(f.body.to_vec())
            } else {
                None
            },
        },
        Cmd::Destroy => Op::Destroy { conn },
        Cmd::SetSession | Cmd::UpdateSession => Op::Session {
            conn,
            data: f.ext.to_vec(),
            merge: f.head.cmd == Cmd::UpdateSession,
        },
        Cmd::BindUid if php_empty(f.ext) => return Ok(None),
        Cmd::BindUid => Op::BindUid { conn, uid: text() },
        Cmd::UnbindUid => Op::UnbindUid { conn },
        Cmd::JoinGroup | Cmd::LeaveGroup | Cmd::Ungroup if php_empty(f.ext) => return Ok(None),
        Cmd::JoinGroup => Op::Join {
            conn,
            group: text(),
        },
        Cmd::LeaveGroup => Op::Leave {
            conn,
            group: text(),
        },
        Cmd::Ungroup => Op::Ungroup { group: text() },
        Cmd::GetAllClientSessions => query(link, Query::AllSessions),
        Cmd::GetClientSessionsByGroup => query(link, Query::SessionsByGroup(text())),
        Cmd::GetClientCountByGroup => query(link, Query::CountByGroup(text())),
        Cmd::IsOnline => query(link, Query::IsOnline(conn)),
        Cmd::GetClientIdByUid => query(link, Query::ByUid(text())),
        Cmd::BatchGetClientIdByUid => query(link, Query::BatchByUid(names(&json(f.ext)?))),
        Cmd::GetGroupIdList => query(link, Query::GroupIds),
        Cmd::BatchGetClientCountByGroup => {
            query(link, Query::BatchCountByGroup(names(&json(f.ext)?)))
        }
        Cmd::GetSessionByClientId => query(link, Query::Session(conn)),
        Cmd::Select => query(link, Query::Select(select(f.ext)?)),
        Cmd::Ping
        | Cmd::WorkerConnect
        | Cmd::GatewayClientConnect
        | Cmd::OnConnect
        | Cmd::OnMessage
        | Cmd::OnClose
        | Cmd::OnWebSocketConnect => return Ok(None),
    }))
}

fn query(link: LinkKey, q: Query) -> Op {
    Op::Query { link, q }
}

/// PHP's `empty()` of a string: "" and "0".
fn php_empty(s: &[u8]) -> bool {
    s.is_empty() || s == b"0"
}

fn json(ext: &[u8]) -> Result<Value, CmdError> {
    serde_json::from_slice(ext).map_err(|_| CmdError::BadJson)
}

/// A message body: the string itself, or a serialized scalar PHP would have sent as text.
fn body(f: &Frame<'_>) -> Result<Vec<u8>, CmdError> {
    if f.body_is_scalar() {
        return Ok(f.body.to_vec());
    }
    // `send(null)` or an array: GatewayWorker would hand the value to the client protocol,
    // which casts it to a string; only the scalar cases have a meaning.
    let v = php::unserialize(
        f.body,
        Limits {
            max_depth: 1,
            max_items: 1,
        },
    )
    .map_err(|_| CmdError::BadBody)?;
    Ok(match v {
        Php::Null | Php::Bool(false) => Vec::new(),
        Php::Bool(true) => b"1".to_vec(),
        Php::Int(i) => i.to_string().into_bytes(),
        Php::Float(x) => php::php_float(x).into_bytes(),
        Php::Str(s) => s,
        Php::Array(_) => return Err(CmdError::BadBody),
    })
}

/// The text of a uid or group given as a JSON string or number.
fn name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON list (or object's values) of names.
fn names(v: &Value) -> Vec<String> {
    values(v).filter_map(name).collect()
}

/// A JSON list (or object's values) of connection ids, as numbers or numeric strings.
fn conn_list(v: &Value) -> Vec<ConnNo> {
    values(v)
        .filter_map(|x| match x {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .collect()
}

fn values(v: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(m) => Box::new(m.values()),
        _ => Box::new(std::iter::empty()),
    }
}

fn select(ext: &[u8]) -> Result<Select, CmdError> {
    let v = json(ext)?;
    let mut s = Select {
        order: names(v.get("fields").unwrap_or(&Value::Null)),
        ..Select::default()
    };
    for f in &s.order {
        match f.as_str() {
            "uid" => s.uid = true,
            "groups" => s.groups = true,
            "session" => s.session = true,
            _ => {}
        }
    }
    // `where` is `[]` (PHP's empty array) for "every client".
    if let Some(Value::Object(w)) = v.get("where") {
        if !w.is_empty() {
            s.filter = Some(Filter {
                groups: w.get("groups").map(names).unwrap_or_default(),
                uids: w.get("uid").map(names).unwrap_or_default(),
                conns: w.get("connection_id").map(conn_list).unwrap_or_default(),
            });
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::gateway::frame::{Header, FLAG_BODY_IS_SCALAR, FLAG_NOT_CALL_ENCODE};

    fn frame<'a>(cmd: Cmd, flag: u8, ext: &'a [u8], body: &'a [u8]) -> Frame<'a> {
        Frame {
            head: Header {
                connection_id: 9,
                flag,
                ..Header::new(cmd)
            },
            ext,
            body,
        }
    }

    #[test]
    fn group_send_with_excludes_as_lib_gateway_writes_it() {
        let f = frame(
            Cmd::SendToGroup,
            FLAG_BODY_IS_SCALAR,
            br#"{"group":["room",5],"exclude":{"3":3,"4":4}}"#,
            b"hi",
        );
        match op_of(&f, (0, 0)) {
            Ok(Some(Op::SendGroup {
                groups,
                exclude,
                body,
                raw,
            })) => {
                assert!(!raw);
                assert_eq!(groups, ["room", "5"]);
                assert_eq!(exclude, [3, 4]);
                assert_eq!(body, b"hi");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_raw_flag_reaches_every_send() {
        let raw = FLAG_BODY_IS_SCALAR | FLAG_NOT_CALL_ENCODE;
        for (cmd, ext) in [
            (Cmd::SendToOne, &b""[..]),
            (Cmd::SendToAll, b""),
            (Cmd::SendToUid, br#"["u"]"#),
            (Cmd::SendToGroup, br#"{"group":["g"]}"#),
        ] {
            for (flag, want) in [(raw, true), (FLAG_BODY_IS_SCALAR, false)] {
                let got = match op_of(&frame(cmd, flag, ext, b"\x81\x01x"), (0, 0)) {
                    Ok(Some(
                        Op::Send { raw, .. }
                        | Op::SendAll { raw, .. }
                        | Op::SendUid { raw, .. }
                        | Op::SendGroup { raw, .. },
                    )) => raw,
                    other => panic!("{cmd:?}: {other:?}"),
                };
                assert_eq!(got, want, "{cmd:?} flag {flag}");
            }
        }
    }

    #[test]
    fn empty_names_are_no_ops_and_bad_json_refused() {
        let f = frame(Cmd::JoinGroup, 0, b"0", b"");
        assert!(matches!(op_of(&f, (0, 0)), Ok(None)));
        let f = frame(Cmd::SendToUid, FLAG_BODY_IS_SCALAR, b"{nope", b"x");
        assert_eq!(op_of(&f, (0, 0)).err(), Some(CmdError::BadJson));
    }

    #[test]
    fn serialized_bodies() {
        // Gateway::closeClient($id) sends a null message: serialized, flag 0.
        let f = frame(Cmd::Kick, 0, b"", b"N;");
        assert!(matches!(
            op_of(&f, (0, 0)),
            Ok(Some(Op::Kick {
                conn: 9,
                last: None
            }))
        ));
        let f = frame(Cmd::SendToOne, 0, b"", b"i:42;");
        assert!(matches!(op_of(&f, (0, 0)), Ok(Some(Op::Send { body, .. })) if body == b"42"));
        let f = frame(Cmd::SendToOne, 0, b"", b"O:8:\"stdClass\":0:{}");
        assert_eq!(op_of(&f, (0, 0)).err(), Some(CmdError::BadBody));
    }

    #[test]
    fn select_where_forms() {
        let s = select(br#"{"fields":["uid","groups"],"where":[]}"#).unwrap();
        assert!(s.uid && s.groups && !s.session && s.filter.is_none());
        let s = select(br#"{"fields":["uid"],"where":{"connection_id":{"7":7}}}"#).unwrap();
        assert_eq!(s.filter.unwrap().conns, [7]);
    }
}
