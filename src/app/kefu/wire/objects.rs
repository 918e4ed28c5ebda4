//! The objects the server shows clients, in replies and pushes alike: messages and their
//! event lines, conversations, visitors, queue entries, the seed's colleague list.

use crate::app::kefu::state::ConvState;
use crate::store::convo::Rating;
use serde::{Deserialize, Serialize};

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
