//! Every push, reply and error frame the server sends, tagged by `method`.

use super::objects::{ConvOut, CustomerEntry, MessageOut, QueueEntry};
use crate::store::depts::Dept;
use crate::store::tenancy::AgentRole;
use serde::Serialize;

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
