//! What the inner port asks of the worker's clients.

/// Connection id on this gateway (GatewayWorker's `connection_id`).
pub(crate) type ConnNo = u32;

/// Names one inner connection: slab slot and generation.
pub(crate) type LinkKey = (usize, u64);

/// What a BusinessWorker or GatewayClient asked of this gateway.
#[derive(Debug)]
pub(crate) enum Op {
    /// Send to one client.
    Send {
        /// The client.
        conn: ConnNo,
        /// The message.
        body: Vec<u8>,
        /// Write `body` as it is, unframed (GatewayWorker's `FLAG_NOT_CALL_ENCODE`).
        raw: bool,
    },
    /// Send to listed clients, or to all but some.
    SendAll {
        /// Only these (None: everyone).
        only: Option<Vec<ConnNo>>,
        /// Not these.
        exclude: Vec<ConnNo>,
        /// The message.
        body: Vec<u8>,
        /// Write `body` as it is, unframed (GatewayWorker's `FLAG_NOT_CALL_ENCODE`).
        raw: bool,
    },
    /// Send to the clients of uids.
    SendUid {
        /// The uids.
        uids: Vec<String>,
        /// The message.
        body: Vec<u8>,
        /// Write `body` as it is, unframed (GatewayWorker's `FLAG_NOT_CALL_ENCODE`).
        raw: bool,
    },
    /// Send to the members of groups.
    SendGroup {
        /// The groups.
        groups: Vec<String>,
        /// Not these.
        exclude: Vec<ConnNo>,
        /// The message.
        body: Vec<u8>,
        /// Write `body` as it is, unframed (GatewayWorker's `FLAG_NOT_CALL_ENCODE`).
        raw: bool,
    },
    /// Close after a last message.
    Kick {
        /// The client.
        conn: ConnNo,
        /// The last message.
        last: Option<Vec<u8>>,
    },
    /// Close now.
    Destroy {
        /// The client.
        conn: ConnNo,
    },
    /// Replace (or with `merge`, merge into) a session, given serialized.
    Session {
        /// The client.
        conn: ConnNo,
        /// Serialized PHP array (empty: no session).
        data: Vec<u8>,
        /// Merge instead of replacing.
        merge: bool,
    },
    /// Bind a uid.
    BindUid {
        /// The client.
        conn: ConnNo,
        /// The uid.
        uid: String,
    },
    /// Unbind the uid.
    UnbindUid {
        /// The client.
        conn: ConnNo,
    },
    /// Join a group.
    Join {
        /// The client.
        conn: ConnNo,
        /// The group.
        group: String,
    },
    /// Leave a group.
    Leave {
        /// The client.
        conn: ConnNo,
        /// The group.
        group: String,
    },
    /// Dissolve a group.
    Ungroup {
        /// The group.
        group: String,
    },
    /// A question; the answer goes back to `link`.
    Query {
        /// Who asked.
        link: LinkKey,
        /// What.
        q: Query,
    },
}

/// A query a gateway answers about its own clients.
#[derive(Debug)]
pub(crate) enum Query {
    /// Every client's session.
    AllSessions,
    /// Sessions of a group's members.
    SessionsByGroup(String),
    /// Members of a group, or all clients for "".
    CountByGroup(String),
    /// Whether a client is here.
    IsOnline(ConnNo),
    /// Clients of a uid.
    ByUid(String),
    /// Clients of several uids.
    BatchByUid(Vec<String>),
    /// Groups with members here.
    GroupIds,
    /// Member counts of several groups.
    BatchCountByGroup(Vec<String>),
    /// One session.
    Session(ConnNo),
    /// Fields of clients matching a filter.
    Select(Select),
}

/// `CMD_SELECT`: which fields, of which clients.
#[derive(Debug, Default)]
pub(crate) struct Select {
    /// Include the uid.
    pub(crate) uid: bool,
    /// Include the groups.
    pub(crate) groups: bool,
    /// Include the session.
    pub(crate) session: bool,
    /// The field names in the order asked (answers keep it).
    pub(crate) order: Vec<String>,
    /// None: every client; else the union of these.
    pub(crate) filter: Option<Filter>,
}

/// `CMD_SELECT`'s `where`.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    /// Members of these groups.
    pub(crate) groups: Vec<String>,
    /// Clients of these uids.
    pub(crate) uids: Vec<String>,
    /// These clients.
    pub(crate) conns: Vec<ConnNo>,
}
