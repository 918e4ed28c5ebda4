//! `chat`: the workerman-chat protocol (rooms, public and private messages, ping/pong).
//!
//! Wire format, JSON text messages:
//! - `{"type":"login","client_name":"Tom","room_id":1}`: the room gets `{"type":"login",...}`,
//!   the newcomer gets the same plus `client_list` (client_id -> name of everyone in the room).
//! - `{"type":"say","to_client_id":"all"|ID,"to_client_name":"...","content":"..."}`: the room
//!   (or the one client, anywhere, and the sender) gets
//!   `{"type":"say","from_client_id",...,"content","time"}`; the content is
//!   `nl2br(htmlspecialchars())`, and a private one starts `<b>对你说: </b>` for its target and
//!   `<b>你对NAME说: </b>` for its sender, as workerman-chat's page expects.
//! - The server sends `{"type":"ping"}` every [`PING_INTERVAL`] (spread over the interval in
//!   slices); clients answer `{"type":"pong"}`.
//! - On close the room gets `{"type":"logout",...}`.
//!
//! Deliberate fixes over workerman-chat: a bad message gets an `error` reply instead of
//! killing the worker; re-login leaves the old room; names are HTML-escaped once; a private
//! message to a client that is not online gets an error instead of vanishing.

use crate::api::{App, ClientId, ClientInfo, Ctx, Payload, StartError, TimerId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How often the server pings every client (workerman-chat's pingInterval).
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// The pings of one interval go out in this many slices, a slice per tick: pinging 10k clients
/// in one turn would hold up every message behind 10k writes (and 10k pongs).
const PING_SLICES: u32 = 10;
/// Longest accepted client name, in characters.
const MAX_NAME: usize = 64;
/// Longest accepted room id, in bytes.
const MAX_ROOM: usize = 64;

/// A room id as clients send it: a string or a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RoomId {
    Str(String),
    Num(i64),
}

impl RoomId {
    fn into_string(self) -> String {
        match self {
            RoomId::Str(s) => s,
            RoomId::Num(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ChatIn {
    Login {
        client_name: String,
        room_id: RoomId,
    },
    Say {
        to_client_id: String,
        #[serde(default)]
        to_client_name: String,
        content: String,
    },
    Pong,
}

#[derive(Serialize)]
struct LoginOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    client_id: &'a str,
    client_name: &'a str,
    time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_list: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
struct SayOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    from_client_id: &'a str,
    from_client_name: &'a str,
    to_client_id: &'a str,
    content: &'a str,
    time: &'a str,
}

#[derive(Serialize)]
struct LogoutOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    from_client_id: &'a str,
    from_client_name: &'a str,
    time: &'a str,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: u32,
    msg: &'a str,
}

/// The chat app. Room membership lives in the worker's groups, names in the sessions.
#[derive(Debug, Default)]
pub struct Chat {
    ping: Option<TimerId>,
    ping_tick: u32,
    /// `time` of the messages sent during second `clock.0`, formatted once per second.
    clock: (u64, String),
}

const ERR_BAD_JSON: u32 = 4000;
const ERR_NOT_LOGGED_IN: u32 = 4001;
const ERR_BAD_FIELD: u32 = 4002;
const ERR_NO_SUCH_CLIENT: u32 = 4004;

fn now_time() -> String {
    crate::log::format_utc(crate::log::now_secs())
}

/// PHP's `nl2br`: `<br />` before every line break (`\r\n`, `\n\r`, `\n`, `\r`).
pub fn nl2br(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\n' || c == '\r' {
            out.push_str("<br />");
            out.push(c);
            let pair = if c == '\n' { '\r' } else { '\n' };
            if it.peek() == Some(&pair) {
                out.push(pair);
                it.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// HTML-escape `s` (what PHP's htmlspecialchars does), so pages that still use innerHTML are safe.
pub fn escape_html(s: &str) -> String {
    escape_html_cow(s).into_owned()
}

/// [`escape_html`], borrowing `s` when it has nothing to escape (most chat lines).
fn escape_html_cow(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn send_json<T: Serialize>(cx: &mut Ctx<'_>, id: ClientId, v: &T) {
    if let Ok(s) = serde_json::to_string(v) {
        cx.send_to_client(id, Payload::Text(&s));
    }
}

fn send_error(cx: &mut Ctx<'_>, id: ClientId, code: u32, msg: &str) {
    send_json(
        cx,
        id,
        &ErrorOut {
            kind: "error",
            code,
            msg,
        },
    );
}

fn session_str(cx: &Ctx<'_>, id: ClientId, key: &str) -> Option<String> {
    cx.get_session(id)?.get(key)?.as_str().map(str::to_owned)
}

impl Chat {
    /// The `time` field for now (`now_time`, reformatted only when the second changes).
    fn now_time(&mut self) -> &str {
        let now = crate::log::now_secs();
        if self.clock.0 != now || self.clock.1.is_empty() {
            self.clock = (now, crate::log::format_utc(now));
        }
        &self.clock.1
    }

    fn login(&mut self, cx: &mut Ctx<'_>, id: ClientId, name: String, room: String) {
        if room.is_empty() || room.len() > MAX_ROOM {
            return send_error(cx, id, ERR_BAD_FIELD, "room_id must be 1..64 bytes");
        }
        let name: String = name.trim().chars().take(MAX_NAME).collect();
        let name = if name.is_empty() {
            "guest".to_string()
        } else {
            escape_html(&name)
        };
        if let Some(old) = session_str(cx, id, "room_id") {
            let _ = cx.leave_group(id, &old);
        }
        let mut patch = serde_json::Map::new();
        patch.insert("room_id".into(), room.clone().into());
        patch.insert("client_name".into(), name.clone().into());
        let _ = cx.update_session(id, patch);
        let me = id.to_string();
        let time = now_time();
        let msg = LoginOut {
            kind: "login",
            client_id: &me,
            client_name: &name,
            time: &time,
            client_list: None,
        };
        if let Ok(s) = serde_json::to_string(&msg) {
            cx.send_to_group(&[&room], Payload::Text(&s), &[]);
        }
        if cx.join_group(id, &room).is_err() {
            return send_error(cx, id, ERR_BAD_FIELD, "cannot join that room");
        }
        let mut list = serde_json::Map::new();
        for (member, session) in cx.get_client_sessions_by_group(&room) {
            if let Some(n) = session.get("client_name") {
                list.insert(member.to_string(), n.clone());
            }
        }
        send_json(
            cx,
            id,
            &LoginOut {
                client_list: Some(list),
                ..msg
            },
        );
    }

    fn say(&mut self, cx: &mut Ctx<'_>, id: ClientId, to: &str, to_name: &str, content: &str) {
        let (Some(room), Some(name)) = (
            session_str(cx, id, "room_id"),
            session_str(cx, id, "client_name"),
        ) else {
            return send_error(cx, id, ERR_NOT_LOGGED_IN, "login first");
        };
        let me = id.to_string();
        let content = escape_html_cow(content);
        let content = if content.contains(['\n', '\r']) {
            std::borrow::Cow::Owned(nl2br(&content))
        } else {
            content
        };
        let time = now_time();
        if to != "all" {
            let Some(target) = ClientId::parse(to).filter(|t| cx.is_online(*t)) else {
                return send_error(cx, id, ERR_NO_SUCH_CLIENT, "no such client");
            };
            // workerman-chat's private message: sendToClient, whatever the room.
            for (who, prefix) in [
                (target, "<b>对你说: </b>".to_string()),
                (id, format!("<b>你对{}说: </b>", escape_html(to_name))),
            ] {
                let text = format!("{prefix}{content}");
                let out = SayOut {
                    kind: "say",
                    from_client_id: &me,
                    from_client_name: &name,
                    to_client_id: to,
                    content: &text,
                    time: &time,
                };
                send_json(cx, who, &out);
            }
            return;
        }
        let out = SayOut {
            kind: "say",
            from_client_id: &me,
            from_client_name: &name,
            to_client_id: to,
            content: &content,
            time: self.now_time(),
        };
        let Ok(text) = serde_json::to_string(&out) else {
            return;
        };
        cx.send_to_group(&[&room], Payload::Text(&text), &[]);
    }
}

impl App for Chat {
    fn on_worker_start(&mut self, cx: &mut Ctx<'_>) -> Result<(), StartError> {
        self.ping = Some(cx.add_timer(PING_INTERVAL / PING_SLICES, true, 0));
        Ok(())
    }

    fn on_message(&mut self, cx: &mut Ctx<'_>, id: ClientId, msg: Payload<'_>) {
        // A text payload is UTF-8 already (the decoder checked it): `from_str` does not check again.
        let parsed = match msg {
            Payload::Text(t) => serde_json::from_str::<ChatIn>(t),
            Payload::Binary(b) => serde_json::from_slice::<ChatIn>(b),
        };
        match parsed {
            Ok(ChatIn::Login {
                client_name,
                room_id,
            }) => self.login(cx, id, client_name, room_id.into_string()),
            Ok(ChatIn::Say {
                to_client_id,
                to_client_name,
                content,
            }) => self.say(cx, id, &to_client_id, &to_client_name, &content),
            Ok(ChatIn::Pong) => {}
            Err(_) => send_error(
                cx,
                id,
                ERR_BAD_JSON,
                "expected {\"type\":\"login\"|\"say\"|\"pong\",...}",
            ),
        }
    }

    fn on_close(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        let (Some(room), Some(name)) = (
            session_str(cx, id, "room_id"),
            session_str(cx, id, "client_name"),
        ) else {
            return;
        };
        let me = id.to_string();
        let time = now_time();
        let out = LogoutOut {
            kind: "logout",
            from_client_id: &me,
            from_client_name: &name,
            time: &time,
        };
        if let Ok(s) = serde_json::to_string(&out) {
            cx.send_to_group(&[&room], Payload::Text(&s), &[id]);
        }
    }

    fn on_peer_lost(&mut self, cx: &mut Ctx<'_>, gone: &[(ClientId, ClientInfo)]) {
        // Clients of a worker that died got no on_close: each surviving worker tells its own
        // members of their rooms.
        let time = now_time();
        for (c, info) in gone {
            let field = |k: &str| info.session.get(k).and_then(serde_json::Value::as_str);
            let (Some(room), Some(name)) = (field("room_id"), field("client_name")) else {
                continue;
            };
            let me = c.to_string();
            let out = LogoutOut {
                kind: "logout",
                from_client_id: &me,
                from_client_name: name,
                time: &time,
            };
            if let Ok(s) = serde_json::to_string(&out) {
                cx.send_to_group_local(&[room], Payload::Text(&s));
            }
        }
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_>, timer: TimerId, _tag: u64) {
        if Some(timer) == self.ping {
            // Each worker pings its own clients: a cluster-wide send from every worker would
            // ping everyone N times.
            self.ping_tick = self.ping_tick.wrapping_add(1);
            cx.send_to_all_local_part(
                (self.ping_tick % PING_SLICES) as usize,
                PING_SLICES as usize,
                Payload::Text("{\"type\":\"ping\"}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            escape_html("<img src=x onerror='a'>&\""),
            "&lt;img src=x onerror=&#039;a&#039;&gt;&amp;&quot;"
        );
    }

    #[test]
    fn nl2br_as_php() {
        assert_eq!(
            nl2br("a\nb\r\nc\rd\n\re"),
            "a<br />\nb<br />\r\nc<br />\rd<br />\n\re"
        );
        assert_eq!(nl2br("\n\n"), "<br />\n<br />\n");
    }

    #[test]
    fn parses_room_ids() {
        let m: ChatIn =
            serde_json::from_str(r#"{"type":"login","client_name":"a","room_id":3}"#).unwrap();
        assert!(matches!(
            m,
            ChatIn::Login {
                room_id: RoomId::Num(3),
                ..
            }
        ));
        assert!(serde_json::from_str::<ChatIn>(r#"{"type":"say"}"#).is_err());
    }
}
