//! Typed WebSocket messages of the kefu protocol (docs/kefu-protocol.md), both directions,
//! tagged by `"method"` as in the seed protocol.

use super::state::ConvState;
use crate::store::convo::Rating;
use crate::store::depts::Dept;
use crate::store::tenancy::AgentRole;
use serde::{Deserialize, Serialize};

/// Error codes (strings on the wire, as in the seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// Not JSON / not an object / binary frame.
    BadJson,
    /// JSON without `method` (seed 10001).
    NoMethod,
    /// Login failed (seed 10002).
    LoginFailed,
    /// Unknown method.
    UnknownMethod,
    /// Not logged in, or not allowed for this role.
    NotLoggedIn,
    /// A field is invalid.
    Invalid,
    /// Conditional change lost: taken, not yours, closed.
    Conflict,
    /// No such conversation or agent.
    NotFound,
    /// Rate limited or busy.
    Busy,
    /// Storage failed; nothing was done.
    Storage,
    /// Transfer target offline.
    Offline,
}

impl Code {
    /// The wire string.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Code::BadJson => "10000",
            Code::NoMethod => "10001",
            Code::LoginFailed => "10002",
            Code::UnknownMethod => "10003",
            Code::NotLoggedIn => "10004",
            Code::Invalid => "10005",
            Code::Conflict => "10006",
            Code::NotFound => "10007",
            Code::Busy => "10008",
            Code::Storage => "10009",
            Code::Offline => "10010",
        }
    }
}

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

/// An error frame.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorOut<'a> {
    /// Code string.
    pub code: &'static str,
    /// Human-readable reason.
    pub msg: &'a str,
    /// The request's method, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    /// The failed send's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<&'a str>,
    /// Seconds to wait before retrying (refusals by a rate limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// One entry of the seed's `customer_list`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct CustomerEntry {
    /// Agent id.
    pub customer_id: String,
    /// Display name.
    pub customer_name: String,
    /// Always 1 (online), as in the seed.
    pub status: u8,
}

/// Who closed a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ClosedBy {
    /// Its agent (or a colleague dismissing it from the queue).
    Agent,
    /// The visitor.
    Visitor,
}

/// What a server event message says, as fields (`args` of an event message): pages render
/// it in their own language; the stored `text` is the English line for everyone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Event {
    /// An agent took the conversation (routing or a claim).
    Assigned {
        agent_id: String,
        agent_name: String,
    },
    /// An agent handed it to a colleague.
    Transferred {
        from_id: String,
        from_name: String,
        to_id: String,
        to_name: String,
    },
    /// Closed, by the visitor or an agent (`agent_*` then).
    Closed {
        by: ClosedBy,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent_name: Option<String>,
    },
    /// Its agent stayed away past the grace period: back in the queue.
    Requeued {
        agent_id: String,
        agent_name: String,
    },
    /// An agent handed it to a department's line.
    TransferredDept {
        from_id: String,
        from_name: String,
        dept_id: String,
        dept_name: String,
    },
    /// Its agent was disabled by an admin: back in the queue.
    AgentDisabled {
        agent_id: String,
        agent_name: String,
    },
}

impl Event {
    /// The `event` name of the message.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Event::Assigned { .. } => "assigned",
            Event::Transferred { .. } => "transferred",
            Event::Closed { .. } => "closed",
            Event::Requeued { .. } => "requeued",
            Event::TransferredDept { .. } => "transferred",
            Event::AgentDisabled { .. } => "requeued",
        }
    }

    /// The English line stored as the message's `text` (for clients that do not know `args`).
    pub(crate) fn line(&self) -> String {
        match self {
            Event::Assigned { agent_name, .. } => format!("{agent_name} joined the conversation"),
            Event::Transferred {
                from_name, to_name, ..
            } => format!("{from_name} transferred the conversation to {to_name}"),
            Event::Closed {
                agent_name: Some(n),
                ..
            } => format!("Conversation closed by {n}"),
            Event::Closed { .. } => "Conversation closed by the visitor".to_string(),
            Event::Requeued { agent_name, .. } => {
                format!("{agent_name} left; the conversation is waiting for an agent")
            }
            Event::TransferredDept {
                from_name,
                dept_name,
                ..
            } => format!("{from_name} transferred the conversation to {dept_name}"),
            Event::AgentDisabled { agent_name, .. } => {
                format!(
                    "{agent_name} is no longer available; the conversation is waiting for an agent"
                )
            }
        }
    }
}

/// A stored message as clients see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct MessageOut {
    /// Conversation.
    pub conv_id: i64,
    /// Position in the conversation.
    pub seq: i64,
    /// `visitor`, `agent` or `system`.
    pub from: String,
    /// Sender id.
    pub sender_id: String,
    /// Sender display name.
    pub sender_name: String,
    /// `text`, `image` or `event`.
    pub kind: String,
    /// Text (text and event messages).
    pub text: Option<String>,
    /// Image URL.
    pub url: Option<String>,
    /// Event name (event messages).
    pub event: Option<String>,
    /// Commit time, ms.
    pub ts: i64,
    /// The sender's id for it.
    pub client_msg_id: Option<String>,
    /// An event message's fields (`kind: "event"` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Event>,
}

/// Visitor details shown to agents.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VisitorOut {
    /// Visitor id.
    pub visitor_id: String,
    /// Name (given by the page or the integrator).
    pub name: String,
    /// Identity signed by the integrator.
    pub verified: bool,
    /// Any connection of the visitor is open.
    pub online: bool,
    /// Client IP.
    pub ip: String,
    /// Page the widget runs on.
    pub page_url: String,
    /// Referrer of that page.
    pub referrer: String,
    /// Browser user agent.
    pub user_agent: String,
    /// First seen, ms.
    pub first_seen: i64,
    /// Last seen, ms.
    pub last_seen: i64,
    /// How to reach the visitor (left with an offline message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

/// A conversation as clients see it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConvOut {
    /// Id.
    pub conv_id: i64,
    /// Business.
    pub bid: String,
    /// Where it is in its life.
    pub state: ConvState,
    /// Assigned agent.
    pub agent_id: Option<String>,
    /// Its name.
    pub agent_name: Option<String>,
    /// Visitor details (agents only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitor: Option<VisitorOut>,
    /// Opened, ms.
    pub created_at: i64,
    /// Entered the queue, ms.
    pub queued_at: i64,
    /// Assigned, ms.
    pub assigned_at: Option<i64>,
    /// Closed, ms.
    pub closed_at: Option<i64>,
    /// Last seq.
    pub last_seq: i64,
    /// Agent has read up to.
    pub agent_read_seq: i64,
    /// Visitor has read up to.
    pub visitor_read_seq: i64,
    /// Its department (null: none).
    pub dept_id: Option<String>,
    /// Visitor messages after `agent_read_seq`.
    pub unread: i64,
    /// Newest message.
    pub last_message: Option<MessageOut>,
    /// The visitor's rating (closed conversations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
}

/// A waiting conversation.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct QueueEntry {
    /// Conversation.
    pub conv_id: i64,
    /// 1 = next.
    pub position: i64,
    /// Visitor.
    pub visitor_id: String,
    /// Visitor name.
    pub visitor_name: String,
    /// Entered the queue, ms.
    pub queued_at: i64,
    /// The line it waits in: its department (null: none).
    pub dept_id: Option<String>,
    /// Newest message.
    pub last_message: Option<MessageOut>,
    /// How to reach the visitor (left with an offline message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

/// Every push and reply, tagged by `method`.
#[derive(Debug, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub(crate) enum Out<'a> {
    /// Agent login reply (seed shape plus conversations and queue).
    Login {
        customer_id: &'a str,
        customer_name: &'a str,
        timestamp: i64,
        customer_list: &'a [CustomerEntry],
        conversations: &'a [ConvOut],
        queue: &'a [QueueEntry],
        /// `admin` or `agent`.
        role: AgentRole,
        /// The agent's departments.
        departments: &'a [Dept],
    },
    /// An agent came online (seed).
    LoginPush {
        customer_id: &'a str,
        customer_name: &'a str,
        timestamp: i64,
    },
    /// An agent went offline everywhere (seed).
    LogoutPush {
        customer_id: &'a str,
        customer_name: &'a str,
        timestamp: i64,
    },
    /// Visitor login reply.
    VisitorLogin {
        visitor_id: &'a str,
        token: &'a str,
        verified: bool,
        expires_at: i64,
        conv: Option<&'a ConvOut>,
        agents_online: bool,
        /// The open conversation's agent is online (false without one).
        agent_online: bool,
        /// The department its next conversation goes to.
        dept: Option<&'a str>,
    },
    /// To a business's visitors: an agent came or went; `agents_online` is the business's
    /// availability after the change (leave-a-message mode when false).
    AgentPresence {
        agent_id: &'a str,
        agent_name: &'a str,
        online: bool,
        agents_online: bool,
    },
    /// To a business's agents: a visitor's first tab opened or its last one closed.
    VisitorPresence { visitor_id: &'a str, online: bool },
    /// A message was stored.
    Ack {
        client_msg_id: Option<&'a str>,
        conv_id: i64,
        seq: i64,
        ts: i64,
    },
    /// A new message.
    Message(&'a MessageOut),
    /// A history page.
    History {
        conv_id: i64,
        messages: &'a [MessageOut],
        has_more: bool,
    },
    /// Resume answer.
    Sync {
        conv_id: i64,
        messages: &'a [MessageOut],
        last_seq: i64,
        reload: bool,
    },
    /// To an agent: a conversation is now yours.
    #[serde(rename = "assigned")]
    AgentAssigned { conv: &'a ConvOut },
    /// To a visitor: an agent took the conversation.
    #[serde(rename = "assigned")]
    VisitorAssigned {
        conv_id: i64,
        agent_id: &'a str,
        agent_name: &'a str,
    },
    /// To an agent: a conversation left you.
    Unassigned {
        conv_id: i64,
        reason: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<&'a str>,
    },
    /// To a visitor: queue position.
    Waiting {
        conv_id: i64,
        position: i64,
        agents_online: bool,
    },
    /// To agents who may take them: one line of the queue changed (`dept_id` null: the
    /// conversations without a department, sent to every agent of the business).
    QueueUpdate {
        dept_id: Option<&'a str>,
        queue: &'a [QueueEntry],
        queue_len: i64,
    },
    /// Typing indicator.
    Typing {
        conv_id: i64,
        from: &'a str,
        typing: bool,
    },
    /// Read receipt.
    Read { conv_id: i64, by: &'a str, seq: i64 },
    /// Unread counter of a conversation (agent tabs).
    Unread { conv_id: i64, unread: i64 },
    /// The agent's conversation list.
    Conversations {
        conversations: &'a [ConvOut],
        queue: &'a [QueueEntry],
    },
}

impl Out<'_> {
    /// Serialize (these types cannot fail to serialize).
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
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

    #[test]
    fn outgoing_shapes() {
        let s = Out::LoginPush {
            customer_id: "a",
            customer_name: "A",
            timestamp: 5,
        }
        .to_json();
        assert_eq!(
            s,
            r#"{"method":"login_push","customer_id":"a","customer_name":"A","timestamp":5}"#
        );
        let m = MessageOut {
            conv_id: 1,
            seq: 2,
            from: "agent".into(),
            sender_id: "a".into(),
            sender_name: "A".into(),
            kind: "text".into(),
            text: Some("<b>".into()),
            url: None,
            event: None,
            ts: 3,
            client_msg_id: None,
            args: None,
        };
        let v: serde_json::Value = serde_json::from_str(&Out::Message(&m).to_json()).unwrap();
        assert_eq!(v["method"], "message");
        assert_eq!(v["text"], "<b>");
    }
}
