//! Typed WebSocket messages of the kefu protocol (docs/kefu-protocol.md), both directions,
//! tagged by `"method"` as in the seed protocol: what clients send (`incoming.rs`), the
//! objects the server shows them (`objects.rs`: messages, conversations, queue entries,
//! event lines) and every push, reply and error frame (`out.rs`); the error codes here.

mod incoming;
mod objects;
mod out;

pub(crate) use incoming::{In, LoginIn, Method, Resume, SendKind, StrOrNum, VisitorLoginIn};
pub(crate) use objects::{
    ClosedBy, ConvOut, CustomerEntry, Event, MessageOut, QueueEntry, VisitorOut,
};
pub(crate) use out::{ErrorOut, Out};

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
