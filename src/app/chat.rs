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
use std::borrow::Cow;
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

/// Whether JSON needs any byte of `b` escaped: a control character, `"` or `\`. Eight bytes
/// at a time (the usual SWAR tests for "some byte below n" and "some byte equal to c"), since
/// every value of every message goes through here.
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let mut le = [0u8; 8];
        le.copy_from_slice(w);
        let v = u64::from_le_bytes(le);
        let below_space = v.wrapping_sub(ONES * 0x20) & !v;
        let quote = v ^ (ONES * u64::from(b'"'));
        let backslash = v ^ (ONES * u64::from(b'\\'));
        let is_quote = quote.wrapping_sub(ONES) & !quote;
        let is_backslash = backslash.wrapping_sub(ONES) & !backslash;
        if (below_space | is_quote | is_backslash) & HIGH != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&c| c < 0x20 || c == b'"' || c == b'\\')
}

/// A string field that borrows from the frame unless it holds JSON escapes (serde borrows a
/// `Cow` only when it is the field's own type, not inside an `Option`).
#[derive(Debug, Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// A client message as it comes: one flat object whose `type` says which fields count.
/// Strings borrow from the frame unless they hold JSON escapes (an internally tagged enum
/// would buffer every field into serde's `Content` first: an allocation per field).
#[derive(Debug, Deserialize)]
struct ChatIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    client_name: Option<Text<'a>>,
    #[serde(default)]
    room_id: Option<RoomId>,
    #[serde(default, borrow)]
    to_client_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    to_client_name: Option<Text<'a>>,
    #[serde(default, borrow)]
    content: Option<Text<'a>>,
}

/// What a client asked for, once `type` and its fields are checked.
enum Request<'a> {
    Login {
        name: &'a str,
        room: String,
    },
    Say {
        to: &'a str,
        to_name: &'a str,
        content: &'a str,
    },
    Pong,
}

impl<'a> ChatIn<'a> {
    /// The request, or `None` when `type` is unknown or a field it needs is missing.
    fn request(&'a self) -> Option<Request<'a>> {
        match &*self.kind {
            "login" => Some(Request::Login {
                name: &self.client_name.as_ref()?.0,
                room: match self.room_id.as_ref()? {
                    RoomId::Str(s) => s.clone(),
                    RoomId::Num(n) => n.to_string(),
                },
            }),
            "say" => Some(Request::Say {
                to: &self.to_client_id.as_ref()?.0,
                to_name: self.to_client_name.as_ref().map_or("", |t| &t.0),
                content: &self.content.as_ref()?.0,
            }),
            "pong" => Some(Request::Pong),
            _ => None,
        }
    }
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
    /// Reused per message so a say allocates nothing: the sender's room and name (copied
    /// out of its session), a private message's prefixed content, the JSON sent.
    room: String,
    name: String,
    text: String,
    json: String,
}

const ERR_BAD_JSON: u32 = 4000;
const ERR_NOT_LOGGED_IN: u32 = 4001;
const ERR_BAD_FIELD: u32 = 4002;
const ERR_NO_SUCH_CLIENT: u32 = 4004;

fn now_time() -> String {
    crate::log::format_utc(crate::log::now_secs())
}

/// The `time` field for now, reformatted only when the second changes.
fn clock_time(clock: &mut (u64, String)) -> &str {
    let now = crate::log::now_secs();
    if clock.0 != now || clock.1.is_empty() {
        *clock = (now, crate::log::format_utc(now));
    }
    &clock.1
}

impl SayOut<'_> {
    /// Writes what `serde_json::to_string(self)` gives into `out` (cleared first). Every chat
    /// message is one of these, and serde_json's escaper walks each key and value byte by byte
    /// through its writer: most of a private message's CPU in user space. Here the keys are
    /// constants and a value with nothing to escape (ids, the time, most names and lines) is
    /// copied whole. Checked against serde_json by a property test.
    fn write_json(&self, out: &mut String) {
        out.clear();
        out.push_str("{\"type\":");
        json_str(out, self.kind);
        out.push_str(",\"from_client_id\":");
        json_str(out, self.from_client_id);
        out.push_str(",\"from_client_name\":");
        json_str(out, self.from_client_name);
        out.push_str(",\"to_client_id\":");
        json_str(out, self.to_client_id);
        out.push_str(",\"content\":");
        json_str(out, self.content);
        out.push_str(",\"time\":");
        json_str(out, self.time);
        out.push('}');
    }
}

/// Appends `s` as a JSON string: as serde_json escapes it (control characters, `"` and `\`;
/// nothing else), taking serde_json's own path only for the strings that need it.
fn json_str(out: &mut String, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else if let Ok(quoted) = serde_json::to_string(s) {
        out.push_str(&quoted);
    }
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

/// Appends `s` HTML-escaped to `out`.
fn escape_html_into(out: &mut String, s: &str) {
    match escape_html_cow(s) {
        Cow::Borrowed(s) => out.push_str(s),
        Cow::Owned(s) => out.push_str(&s),
    }
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

fn bad_json(cx: &mut Ctx<'_>, id: ClientId) {
    send_error(
        cx,
        id,
        ERR_BAD_JSON,
        "expected {\"type\":\"login\"|\"say\"|\"pong\",...}",
    );
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
    /// Copies the sender's room and name out of its session into `self.room` / `self.name`;
    /// false when it has not logged in.
    fn load_sender(&mut self, cx: &Ctx<'_>, id: ClientId) -> bool {
        let Some(session) = cx.get_session(id) else {
            return false;
        };
        let field = |k: &str| session.get(k).and_then(serde_json::Value::as_str);
        let (Some(room), Some(name)) = (field("room_id"), field("client_name")) else {
            return false;
        };
        self.room.clear();
        self.room.push_str(room);
        self.name.clear();
        self.name.push_str(name);
        true
    }

    fn login(&mut self, cx: &mut Ctx<'_>, id: ClientId, name: &str, room: String) {
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
        if !self.load_sender(cx, id) {
            return send_error(cx, id, ERR_NOT_LOGGED_IN, "login first");
        }
        let me = id.text();
        let content = escape_html_cow(content);
        let content = if content.contains(['\n', '\r']) {
            Cow::Owned(nl2br(&content))
        } else {
            content
        };
        let time = clock_time(&mut self.clock);
        if to != "all" {
            let Some(target) = ClientId::parse(to).filter(|t| cx.is_online(*t)) else {
                return send_error(cx, id, ERR_NO_SUCH_CLIENT, "no such client");
            };
            // workerman-chat's private message: sendToClient, whatever the room.
            for who in [target, id] {
                self.text.clear();
                if who == target {
                    self.text.push_str("<b>对你说: </b>");
                } else {
                    self.text.push_str("<b>你对");
                    escape_html_into(&mut self.text, to_name);
                    self.text.push_str("说: </b>");
                }
                self.text.push_str(&content);
                let out = SayOut {
                    kind: "say",
                    from_client_id: me.as_str(),
                    from_client_name: &self.name,
                    to_client_id: to,
                    content: &self.text,
                    time,
                };
                out.write_json(&mut self.json);
                cx.send_to_client(who, Payload::Text(&self.json));
            }
            return;
        }
        let out = SayOut {
            kind: "say",
            from_client_id: me.as_str(),
            from_client_name: &self.name,
            to_client_id: to,
            content: &content,
            time,
        };
        out.write_json(&mut self.json);
        cx.send_to_group(&[&self.room], Payload::Text(&self.json), &[]);
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
        let Ok(msg) = parsed else {
            return bad_json(cx, id);
        };
        match msg.request() {
            Some(Request::Login { name, room }) => self.login(cx, id, name, room),
            Some(Request::Say {
                to,
                to_name,
                content,
            }) => self.say(cx, id, to, to_name, content),
            Some(Request::Pong) => {}
            None => bad_json(cx, id),
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
        let m: ChatIn<'_> =
            serde_json::from_str(r#"{"type":"login","client_name":"a","room_id":3}"#).unwrap();
        assert!(matches!(m.request(), Some(Request::Login { room, .. }) if room == "3"));
        let say: ChatIn<'_> = serde_json::from_str(r#"{"type":"say"}"#).unwrap();
        assert!(
            say.request().is_none(),
            "a say without its fields is refused"
        );
        let odd: ChatIn<'_> = serde_json::from_str(r#"{"type":"dance"}"#).unwrap();
        assert!(odd.request().is_none());
        assert!(serde_json::from_str::<ChatIn<'_>>(r#"{"client_name":"a"}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn say_json_is_serde_jsons(name in ".{0,12}", content in "(.|\\PC|[\\x00-\\x1f\"\\\\])*", to in "[a-f0-9]{0,32}|all") {
            let out = SayOut {
                kind: "say",
                from_client_id: "0123456789abcdef0123456789abcdef",
                from_client_name: &name,
                to_client_id: &to,
                content: &content,
                time: "2026-11-29 01:02:03",
            };
            let mut mine = String::new();
            out.write_json(&mut mine);
            proptest::prop_assert_eq!(mine, serde_json::to_string(&out).unwrap());
        }
    }

    proptest::proptest! {
        #[test]
        fn needs_escape_is_the_byte_rule(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let slow = b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
            proptest::prop_assert_eq!(needs_escape(&b), slow);
        }
    }

    #[test]
    fn strings_borrow_from_the_frame() {
        let m: ChatIn<'_> =
            serde_json::from_str(r#"{"type":"say","to_client_id":"all","content":"plain"}"#)
                .unwrap();
        assert!(matches!(m.content, Some(Text(Cow::Borrowed("plain")))));
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let m: ChatIn<'_> =
            serde_json::from_str(r#"{"type":"say","to_client_id":"all","content":"a\"b\u4f60"}"#)
                .unwrap();
        assert!(matches!(m.request(), Some(Request::Say { content, .. }) if content == "a\"b你"));
    }
}
