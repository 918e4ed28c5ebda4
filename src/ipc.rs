//! Typed messages between the master and its workers, and between the CLI and the master.
//!
//! Both links are unix stream sockets carrying one JSON document per `\n`-terminated line:
//! this is the control plane (a few messages per second), so readability wins over a binary codec.
//! The master hands each worker its end of a `socketpair` as file descriptor [`CONTROL_FD`].

use serde::{Deserialize, Serialize};

/// The fd number at which an exec'd worker finds its control socket.
pub const CONTROL_FD: i32 = 3;

/// The master's listening sockets for a worker's slot start at this descriptor, in the order
/// of [`LISTEN_ENV`].
pub const LISTEN_FD_BASE: i32 = 4;

/// Environment variable naming the inherited listeners: their URLs, comma-separated, the
/// first at [`LISTEN_FD_BASE`].
pub const LISTEN_ENV: &str = "KEFU_LISTEN_FDS";

/// Environment variable naming the descriptor of a successor's end of its hand-over socket
/// (set only for a worker started by `kefu reload` to take over its slot's connections).
pub const HANDOVER_ENV: &str = "KEFU_HANDOVER_FD";

/// Longest control line accepted; a peer sending more is cut off (it is a bug or an attack).
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// Master -> worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MasterMsg {
    /// Stop: close listeners; `graceful` waits for connections to end, otherwise close them now.
    /// `restart` says the worker is being replaced (WebSocket clients get close code 1012, else 1001).
    Stop {
        /// Drain instead of closing connections.
        graceful: bool,
        /// The stop is part of a reload.
        restart: bool,
    },
    /// Answer with [`WorkerMsg::Status`].
    Status {
        /// Echoed back so the master can match replies to requests.
        req: u64,
    },
    /// Answer with [`WorkerMsg::Connections`].
    Connections {
        /// Echoed back.
        req: u64,
    },
    /// An admin change the app must act on (passed to [`crate::api::App::on_admin`]).
    Admin {
        /// What changed.
        event: AdminEvent,
    },
    /// Reload by hand-over: stop accepting, let the app settle, then give every connection,
    /// bus link and the registry replica to the slot's successor over the socket attached to
    /// this message (SCM_RIGHTS), and exit. If the successor cannot read this worker's
    /// records, stop as for `Stop{graceful: false, restart: true}` instead.
    HandOver,
    /// A bus link to another worker: the socket comes attached to this message (SCM_RIGHTS).
    Peer {
        /// The other worker's incarnation.
        inc: u64,
        /// The other worker's slot.
        worker_id: usize,
    },
}

/// Worker -> master.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMsg {
    /// Every listener is bound and the app started: the worker accepts connections.
    Ready {
        /// The worker's pid.
        pid: u32,
        /// Listener URLs as bound.
        listeners: Vec<String>,
    },
    /// The worker could not start (bind failed, app unknown...): the reason, for the admin.
    Failed {
        /// Human-readable reason.
        reason: String,
    },
    /// A successor took its predecessor's connections over: it now speaks as incarnation
    /// `inc` (the predecessor's, so client ids stay the same) and holds its bus links.
    Adopted {
        /// The incarnation taken on.
        inc: u64,
        /// Connections adopted.
        conns: usize,
    },
    /// A successor got nothing from its predecessor: it serves as a fresh worker and needs
    /// bus links like any new worker.
    HandOverFailed {
        /// Why, for the log.
        reason: String,
    },
    /// Reply to [`MasterMsg::Status`].
    Status {
        /// The request number.
        req: u64,
        /// The figures.
        status: WorkerStatus,
    },
    /// Reply to [`MasterMsg::Connections`].
    Connections {
        /// The request number.
        req: u64,
        /// One row per live connection.
        conns: Vec<ConnInfo>,
    },
}

/// One worker's row in `kefu status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkerStatus {
    /// Process id.
    pub pid: u32,
    /// Worker slot (0..workers).
    pub worker_id: usize,
    /// Incarnation: the first 16 hex digits of this worker's client ids.
    #[serde(default)]
    pub inc: u64,
    /// Resident memory in bytes.
    pub memory: u64,
    /// Listener URLs, space separated.
    pub listening: String,
    /// App name.
    pub name: String,
    /// Live connections.
    pub connections: u64,
    /// Connections closed because their send buffer overflowed, plus failed writes.
    pub send_fail: u64,
    /// Active timers.
    pub timers: u64,
    /// Messages decoded since start.
    pub total_request: u64,
    /// `idle`, `busy` or `draining`.
    pub state: String,
}

/// One row of `kefu connections`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConnInfo {
    /// Worker pid.
    pub pid: u32,
    /// Connection id (the client_id once the gateway lands).
    pub id: String,
    /// `websocket`, `text` or `http`; over TLS `wss`, `text+tls` or `https`.
    pub protocol: String,
    /// Bytes received but not yet decoded.
    pub recv_q: u64,
    /// Bytes queued for sending.
    pub send_q: u64,
    /// Bytes read from the socket.
    pub bytes_read: u64,
    /// Bytes written to the socket.
    pub bytes_written: u64,
    /// `HANDSHAKE`, `IDLE` (keep-alive HTTP between requests), `ESTABLISHED`, `CLOSING`, `LINGER`.
    pub state: String,
    /// Local address.
    pub local: String,
    /// Peer address.
    pub remote: String,
}

/// CLI -> master over the control socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum CliRequest {
    /// Gather status from every worker.
    Status,
    /// Gather live connections from every worker.
    Connections,
    /// Stop the whole server.
    Stop {
        /// Let connections drain.
        graceful: bool,
    },
    /// Replace workers one at a time.
    Reload {
        /// Old workers drain before exiting.
        graceful: bool,
    },
    /// Tell every worker's app of an admin change (answered once sent to all of them).
    Admin {
        /// What changed.
        event: AdminEvent,
    },
}

/// A change made by an admin command outside the server (in the store or the data dir) that
/// running workers must act on now rather than at the next use of what changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AdminEvent {
    /// An agent was removed or its password changed: its tokens are dead and its live
    /// sessions must close.
    AgentRevoked {
        /// Business id.
        bid: String,
        /// Agent id.
        agent_id: String,
    },
    /// The token signing key was replaced: re-read it; every session is of the old key.
    KeyRotated,
}

/// Master -> CLI over the control socket: exactly one reply line per request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum CliReply {
    /// Answer to [`CliRequest::Status`].
    Status {
        /// Master figures plus one row per worker process.
        status: MasterStatus,
    },
    /// Answer to [`CliRequest::Connections`].
    Connections {
        /// One row per live connection, all workers together.
        conns: Vec<ConnInfo>,
    },
    /// A stop was started or a reload finished.
    Done {
        /// What happened, for the admin.
        message: String,
        /// Pids of the workers now serving (after a reload), else empty.
        pids: Vec<u32>,
    },
    /// The request could not be carried out.
    Error {
        /// Human-readable reason.
        reason: String,
    },
}

/// What `kefu status` shows about the master and its workers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MasterStatus {
    /// `kefu/<version>`.
    pub version: String,
    /// Master pid.
    pub master_pid: u32,
    /// Unix time (seconds) the master started.
    pub start_time: u64,
    /// App run by the workers.
    pub app: String,
    /// Configured worker count.
    pub worker_count: usize,
    /// `starting`, `running`, `reloading`, `stopping`.
    pub phase: String,
    /// Exits seen so far, per (app, raw wait status).
    pub exits: Vec<ExitStat>,
    /// One row per live worker process; a worker that did not answer in time has state `busy`
    /// and zero figures.
    pub workers: Vec<WorkerStatus>,
    /// The cluster as this node sees it (absent on a single node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterView>,
}

/// What this node knows of another, for `kefu status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterNode {
    /// Node id.
    pub node: u8,
    /// Its name.
    pub name: String,
    /// Its epoch.
    pub epoch: u64,
    /// Its worker incarnations.
    pub workers: Vec<u64>,
    /// Milliseconds since its lease was last seen.
    pub seen_ms_ago: u64,
}

/// The cluster as this node sees it, for `kefu status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterView {
    /// This node's id.
    pub node: u8,
    /// This node's name.
    pub name: String,
    /// This node's epoch.
    pub epoch: u64,
    /// Whether the Redis connection used for leases and publishing is up.
    pub redis_up: bool,
    /// The other nodes.
    pub nodes: Vec<ClusterNode>,
    /// Live links between local and remote workers.
    pub links: usize,
}

/// One row of the exit table: how often workers of `name` ended with `status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitStat {
    /// App name.
    pub name: String,
    /// Raw wait status as Workerman shows it: 0 normal, 9 SIGKILL, 64000 = exit(250).
    pub status: i32,
    /// Number of exits.
    pub count: u64,
}

/// Encode one message as a control line.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail (no maps with non-string keys, no custom Serialize).
    let mut v = serde_json::to_vec(msg).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Why a control line could not be read.
#[derive(Debug)]
pub enum LineError {
    /// A line exceeded [`MAX_LINE`].
    TooLong,
    /// A line was not a valid message.
    Json(serde_json::Error),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::TooLong => write!(f, "control line too long"),
            LineError::Json(e) => write!(f, "bad control message: {e}"),
        }
    }
}

impl std::error::Error for LineError {}

/// Accumulates bytes from a non-blocking control socket and yields whole messages.
#[derive(Debug, Default)]
pub struct LineBuf {
    buf: Vec<u8>,
    scanned: usize,
}

impl LineBuf {
    /// Append bytes just read.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Take the next complete message, if any.
    pub fn next_msg<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>, LineError> {
        match self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = self.scanned + i;
                let r = serde_json::from_slice(&self.buf[..end]);
                self.buf.drain(..=end);
                self.scanned = 0;
                r.map(Some).map_err(LineError::Json)
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_LINE {
                    return Err(LineError::TooLong);
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_split_lines() {
        let a = encode(&MasterMsg::Stop {
            graceful: true,
            restart: false,
        });
        let b = encode(&MasterMsg::Status { req: 7 });
        let all: Vec<u8> = [a, b].concat();
        let mut lb = LineBuf::default();
        let mut got = Vec::new();
        for ch in all.chunks(3) {
            lb.extend(ch);
            while let Some(m) = lb.next_msg::<MasterMsg>().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(
            got,
            vec![
                MasterMsg::Stop {
                    graceful: true,
                    restart: false
                },
                MasterMsg::Status { req: 7 }
            ]
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let mut lb = LineBuf::default();
        lb.extend(b"{nope\n");
        assert!(lb.next_msg::<MasterMsg>().is_err());
    }
}
