//! What clients send: the logins and every request, tagged by `method`, and the bare
//! method names error frames echo.

use serde::Deserialize;

/// A string or a number (the seed sends `bid`/`customer_id` either way).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum StrOrNum {
    /// As a string.
    Str(String),
    /// As a number.
    Num(i64),
}

impl StrOrNum {
    /// The value as a string.
    pub(crate) fn into_string(self) -> String {
        match self {
            StrOrNum::Str(s) => s,
            StrOrNum::Num(n) => n.to_string(),
        }
    }
}

/// One entry of a resume list: the last seq the client has of a conversation.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct Resume {
    /// Conversation.
    pub conv_id: i64,
    /// Last seq the client holds.
    pub last_seq: i64,
}

/// Message kinds a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SendKind {
    /// Text (emoji included).
    Text,
    /// An image uploaded with `/api/upload`.
    Image,
}

/// An agent login (seed). Fields are optional so a missing one answers 10002, as the seed does.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginIn {
    /// Business.
    pub bid: Option<StrOrNum>,
    /// Agent id.
    pub customer_id: Option<StrOrNum>,
    // Seed clients also send `customer_name`; the name shown comes from the agent's row (a
    // client could claim any name), so serde skips the field.
    /// Agent token from `POST /api/agent/login`.
    pub token: Option<String>,
    /// Conversations to catch up on.
    #[serde(default)]
    pub resume: Vec<Resume>,
}

/// A visitor login: by token, by integrator-signed identity, or anonymous.
#[derive(Debug, Deserialize)]
pub(crate) struct VisitorLoginIn {
    /// Business.
    pub bid: Option<StrOrNum>,
    /// Visitor token from an earlier login.
    pub token: Option<String>,
    /// Integrator's user id (signed identity).
    pub visitor_id: Option<String>,
    /// Name (signed with the identity, or self-declared).
    pub name: Option<String>,
    /// Signing time, seconds.
    pub ts: Option<i64>,
    /// Hex HMAC of the identity.
    pub sig: Option<String>,
    /// Page the widget runs on.
    pub page_url: Option<String>,
    /// Referrer of that page.
    pub referrer: Option<String>,
    /// Department the visitor's next conversation goes to (signed with a signed identity).
    pub dept: Option<String>,
    /// Conversations to catch up on.
    #[serde(default)]
    pub resume: Vec<Resume>,
}

/// Every request a client can send.
#[derive(Debug, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub(crate) enum In {
    /// Agent login.
    Login(LoginIn),
    /// Heartbeat.
    Beat,
    /// Visitor login.
    VisitorLogin(VisitorLoginIn),
    /// Send a message.
    Send {
        conv_id: Option<i64>,
        client_msg_id: Option<String>,
        kind: SendKind,
        text: Option<String>,
        url: Option<String>,
        /// A visitor's department for the conversation this message opens (else the one
        /// chosen at login).
        dept: Option<String>,
    },
    /// A page of older messages.
    History {
        conv_id: i64,
        before_seq: Option<i64>,
        limit: Option<i64>,
    },
    /// Messages after `last_seq`.
    Sync { conv_id: i64, last_seq: i64 },
    /// Typing indicator.
    Typing {
        conv_id: Option<i64>,
        #[serde(default = "yes")]
        typing: bool,
    },
    /// Read receipt.
    Read { conv_id: i64, seq: i64 },
    /// Take a queued conversation.
    Claim { conv_id: i64 },
    /// Hand a conversation to a colleague (`to`) or to a department's line (`dept`).
    Transfer {
        conv_id: i64,
        to: Option<StrOrNum>,
        dept: Option<String>,
    },
    /// Close a conversation.
    Close { conv_id: Option<i64> },
    /// Refresh the agent's conversation list and the queue.
    Conversations,
}

impl In {
    /// Which method this is.
    pub(crate) fn method(&self) -> Method {
        match self {
            In::Login(_) => Method::Login,
            In::Beat => Method::Beat,
            In::VisitorLogin(_) => Method::VisitorLogin,
            In::Send { .. } => Method::Send,
            In::History { .. } => Method::History,
            In::Sync { .. } => Method::Sync,
            In::Typing { .. } => Method::Typing,
            In::Read { .. } => Method::Read,
            In::Claim { .. } => Method::Claim,
            In::Transfer { .. } => Method::Transfer,
            In::Close { .. } => Method::Close,
            In::Conversations => Method::Conversations,
        }
    }

    /// The client's id for a `send` (echoed in its ack and errors).
    pub(crate) fn client_msg_id(&self) -> Option<&str> {
        match self {
            In::Send { client_msg_id, .. } => client_msg_id.as_deref(),
            _ => None,
        }
    }
}

fn yes() -> bool {
    true
}

/// The methods of [`In`], without their fields (what error frames echo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// `login`.
    Login,
    /// `beat`.
    Beat,
    /// `visitor_login`.
    VisitorLogin,
    /// `send`.
    Send,
    /// `history`.
    History,
    /// `sync`.
    Sync,
    /// `typing`.
    Typing,
    /// `read`.
    Read,
    /// `claim`.
    Claim,
    /// `transfer`.
    Transfer,
    /// `close`.
    Close,
    /// `conversations`.
    Conversations,
}

impl Method {
    /// Every method.
    pub(crate) const ALL: [Method; 12] = [
        Method::Login,
        Method::Beat,
        Method::VisitorLogin,
        Method::Send,
        Method::History,
        Method::Sync,
        Method::Typing,
        Method::Read,
        Method::Claim,
        Method::Transfer,
        Method::Close,
        Method::Conversations,
    ];

    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Login => "login",
            Method::Beat => "beat",
            Method::VisitorLogin => "visitor_login",
            Method::Send => "send",
            Method::History => "history",
            Method::Sync => "sync",
            Method::Typing => "typing",
            Method::Read => "read",
            Method::Claim => "claim",
            Method::Transfer => "transfer",
            Method::Close => "close",
            Method::Conversations => "conversations",
        }
    }

    /// The method a wire name names (to tell "unknown method" from "bad fields").
    pub(crate) fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether this is one of the two logins (their failures answer 10002).
    pub(crate) fn is_login(self) -> bool {
        matches!(self, Method::Login | Method::VisitorLogin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_login_parses_with_numbers() {
        let m: In = serde_json::from_str(
            r#"{"method":"login","bid":1,"customer_id":7,"customer_name":"A","token":"t"}"#,
        )
        .unwrap();
        let In::Login(l) = m else { panic!() };
        assert_eq!(l.bid.unwrap().into_string(), "1");
        assert_eq!(l.customer_id.unwrap().into_string(), "7");
        assert!(matches!(
            serde_json::from_str::<In>(r#"{"method":"beat"}"#),
            Ok(In::Beat)
        ));
        assert!(serde_json::from_str::<In>(r#"{"method":"nope"}"#).is_err());
    }

    /// `Method`'s names are exactly the tags serde accepts for `In`.
    #[test]
    fn method_names_match_the_serde_tags() {
        for m in Method::ALL {
            let e = serde_json::from_str::<In>(&format!(r#"{{"method":"{}"}}"#, m.as_str()));
            match e {
                Ok(req) => assert_eq!(req.method(), m),
                // Known tag, missing fields: serde names a field, not the variant.
                Err(e) => assert!(!e.to_string().contains("unknown variant"), "{m:?}: {e}"),
            }
            assert_eq!(Method::parse(m.as_str()), Some(m));
        }
        assert_eq!(Method::parse("nope"), None);
    }
}
