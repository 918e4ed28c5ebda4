//! Typed request bodies of the HTTP API calls, and their parsing into gateway arguments.

use super::HttpApiError;
use crate::protocol::Payload;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// A message to send: a string is sent as text, `{"binary_base64": ...}` as binary, any other
/// JSON value as its JSON text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum MessageIn {
    Text(String),
    Binary(BinaryIn),
    Json(Value),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BinaryIn {
    pub(super) binary_base64: String,
}

/// An owned message ready to be borrowed as a [`Payload`].
pub(super) enum Owned {
    Text(String),
    Binary(Vec<u8>),
}

impl Owned {
    pub(super) fn payload(&self) -> Payload<'_> {
        match self {
            Owned::Text(s) => Payload::Text(s),
            Owned::Binary(b) => Payload::Binary(b),
        }
    }
}

impl MessageIn {
    pub(super) fn into_owned(self) -> Result<Owned, HttpApiError> {
        match self {
            MessageIn::Text(s) => Ok(Owned::Text(s)),
            MessageIn::Binary(b) => base64::engine::general_purpose::STANDARD
                .decode(b.binary_base64.as_bytes())
                .map(Owned::Binary)
                .map_err(|e| HttpApiError::new(400, "bad_message", format!("binary_base64: {e}"))),
            MessageIn::Json(v) => Ok(Owned::Text(v.to_string())),
        }
    }
}

/// A uid or group id: GatewayWorker accepts numbers as well as strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Name {
    Str(String),
    Num(serde_json::Number),
}

impl Name {
    pub(super) fn into_string(self) -> String {
        match self {
            Name::Str(s) => s,
            Name::Num(n) => n.to_string(),
        }
    }
}

/// One name or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Names {
    Many(Vec<Name>),
    One(Name),
}

impl Names {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            Names::Many(v) => v.into_iter().map(Name::into_string).collect(),
            Names::One(n) => vec![n.into_string()],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendToAll {
    pub(super) message: MessageIn,
    pub(super) client_ids: Option<Vec<String>>,
    pub(super) exclude: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendToClient {
    pub(super) client_id: String,
    pub(super) message: MessageIn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendToUid {
    pub(super) uid: Option<Names>,
    pub(super) uids: Option<Names>,
    pub(super) message: MessageIn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendToGroup {
    pub(super) group: Option<Names>,
    pub(super) groups: Option<Names>,
    pub(super) message: MessageIn,
    pub(super) exclude: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientGroup {
    pub(super) client_id: String,
    pub(super) group: Name,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupArg {
    pub(super) group: Name,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OptGroupArg {
    pub(super) group: Option<Name>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientUid {
    pub(super) client_id: String,
    pub(super) uid: Name,
}

/// unbind_uid takes the uid like GatewayWorker's unbindUid, and ignores it the same way.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientOptUid {
    pub(super) client_id: String,
    #[allow(dead_code)]
    pub(super) uid: Option<Name>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientArg {
    pub(super) client_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UidArg {
    pub(super) uid: Name,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionArg {
    pub(super) client_id: String,
    pub(super) session: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CloseArg {
    pub(super) client_id: String,
    pub(super) message: Option<MessageIn>,
}

pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpApiError> {
    // An empty body is an empty object: calls without arguments need no body at all.
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => HttpApiError::new(400, "bad_request", e.to_string()),
            _ => HttpApiError::new(400, "bad_json", e.to_string()),
        }
    })
}

pub(super) fn names(
    one: Option<Names>,
    many: Option<Names>,
    what: &str,
) -> Result<Vec<String>, HttpApiError> {
    let mut v: Vec<String> = one.map(Names::into_vec).unwrap_or_default();
    v.extend(many.map(Names::into_vec).unwrap_or_default());
    if v.is_empty() {
        return Err(HttpApiError::new(
            400,
            "bad_request",
            format!("give {what} or {what}s"),
        ));
    }
    Ok(v)
}
