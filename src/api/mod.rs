//! The API apps are written against: the event trait [`App`], the handle [`Ctx`] every event
//! gets (sends, groups, uids, sessions, timers: GatewayWorker's `Gateway` calls), and the
//! gateway's HTTP API for backends, built on the same calls.
//!
//! An app sees connections only through [`ClientId`]s and its [`Ctx`]; it never touches sockets
//! or the worker's state. Everything an app does is queued on the worker's state and carried
//! out by the event loop at the end of the turn.

mod carry;
mod ctx;
pub mod http_api;

pub use crate::gateway::client_id::ClientId;
pub use crate::gateway::registry::ClientInfo;
pub use crate::gateway::ApiError;
pub use crate::ipc::AdminEvent;
pub use crate::protocol::http::request::Request;
pub use crate::protocol::http::response::Response;
pub use crate::protocol::Payload;
pub use carry::{deadline_in, instant_ago, ms_since, ms_until, AppState, CarryError};
pub use ctx::Ctx;
use std::time::Duration;

/// The first poll token of an app's own sockets: the app's socket `n` is registered with
/// [`Ctx::io_registry`] under `Token(APP_IO_BASE + n)`, `n < APP_IO_SPAN` (below the worker's
/// bus-link and listener tokens, far above connection slots).
pub const APP_IO_BASE: usize = usize::MAX - (1 << 21);
/// How many tokens an app may use.
pub const APP_IO_SPAN: usize = 1 << 20;

/// The poll token of the app's own socket `n`.
pub fn io_token(n: usize) -> mio::Token {
    mio::Token(APP_IO_BASE + n % APP_IO_SPAN)
}

/// Readiness of one of the app's own sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoReady {
    /// Readable, or the peer closed or failed (read to find out).
    pub readable: bool,
    /// Writable.
    pub writable: bool,
}

/// An app timer, as returned by [`Ctx::add_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub u64);

/// What an app needs of the transport. The worker applies the tighter of these and the
/// config's `[limits]`, so an app that never reads past 64 KiB does not let a stranger make the
/// worker buffer 10 MiB per connection on its behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Largest message (WebSocket message, text line) the app accepts.
    pub max_message: usize,
    /// Largest HTTP request body the app accepts.
    pub max_http_body: usize,
    /// How long a new client has, from `on_connect`, until the app calls
    /// [`Ctx::authenticated`] for it; `None` for apps without a login.
    pub login_timeout: Option<Duration>,
    /// Idle close for apps whose clients send heartbeats, used when the config sets none.
    pub idle_timeout: Option<Duration>,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            max_message: usize::MAX,
            max_http_body: usize::MAX,
            login_timeout: None,
            idle_timeout: None,
        }
    }
}

/// Why an app could not start in a worker; the master shows it (`start -d`, `reload`).
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// What an app does with a plain HTTP request.
#[derive(Debug)]
pub enum HttpOutcome {
    /// Answer now.
    Respond(Response),
    /// The app answers later with [`Ctx::respond_http`] (e.g. after a store lookup); the
    /// connection is closed after that answer.
    Pending,
    /// Not for this app: the worker answers (404, or 426 on a WebSocket port).
    NotMine,
}

/// Why an upgrade request was refused by the app: the HTTP status sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject(pub u16);

/// The callbacks of an application (GatewayWorker's `Events` class, in Rust).
///
/// A panic in any callback closes only the connection being handled (logged with its id);
/// the worker and its other connections carry on.
pub trait App {
    /// The worker has bound its listeners; accepting starts after this returns. An error stops
    /// the worker, and its text reaches the admin through the master.
    fn on_worker_start(&mut self, _cx: &mut Ctx<'_>) -> Result<(), StartError> {
        Ok(())
    }
    /// A client connected: a text connection was accepted, or a WebSocket upgrade completed.
    fn on_connect(&mut self, _cx: &mut Ctx<'_>, _id: ClientId) {}
    /// A WebSocket upgrade request arrived; return `Err` to refuse it.
    fn on_websocket_connect(
        &mut self,
        _cx: &mut Ctx<'_>,
        _id: ClientId,
        _req: &Request,
    ) -> Result<(), Reject> {
        Ok(())
    }
    /// A message (WebSocket message or text line) arrived.
    fn on_message(&mut self, cx: &mut Ctx<'_>, id: ClientId, msg: Payload<'_>);
    /// The connection is gone; its session is still readable here.
    fn on_close(&mut self, _cx: &mut Ctx<'_>, _id: ClientId) {}
    /// A plain HTTP request (not a WebSocket upgrade) arrived on an HTTP or WebSocket port.
    fn on_http(&mut self, _cx: &mut Ctx<'_>, _conn: ClientId, _req: &Request) -> HttpOutcome {
        HttpOutcome::NotMine
    }
    /// The worker's [`Ctx::waker`] was woken (by a thread of the app's: store, backend calls).
    fn on_wake(&mut self, _cx: &mut Ctx<'_>) {}
    /// A timer set with [`Ctx::add_timer`] fired.
    fn on_timer(&mut self, _cx: &mut Ctx<'_>, _timer: TimerId, _tag: u64) {}
    /// The worker is stopping (stop or reload). At a reload by hand-over this runs after the
    /// connections moved to the successor: they are not this app's any more (no `on_close`
    /// runs for them here), and sends from here reach only the connections left behind.
    fn on_worker_stop(&mut self, _cx: &mut Ctx<'_>) {}
    /// Whether nothing the app started is still owed to a client (store requests, backend
    /// calls). At a reload by hand-over the retiring worker stops reading its clients, then
    /// waits (a bounded time) for this before moving them, so an answer is never computed by
    /// an app that no longer holds its connection.
    fn settled(&self) -> bool {
        true
    }
    /// A connection moved here from the worker this one replaced (`kefu reload`): its id,
    /// uid, groups and session are already in place, and its client saw nothing. Rebuild
    /// what the app keeps per connection (as from a login). `on_connect` does not run for
    /// it; `on_close` will when it ends.
    fn on_adopt(&mut self, _cx: &mut Ctx<'_>, _id: ClientId) {}
    /// The worker is about to move its clients to its successor (`kefu reload`), after
    /// [`App::settled`] said yes or its bound ran out. The connections are still this app's:
    /// what it sends here reaches them before anything the successor sends. Return what the
    /// successor's app needs to carry on (timers, counters, queued work), for
    /// [`App::take_over`]; `None` carries nothing.
    fn hand_over(&mut self, _cx: &mut Ctx<'_>) -> Option<AppState> {
        None
    }
    /// What the predecessor's app returned from [`App::hand_over`], after every adopted
    /// connection had its [`App::on_adopt`]. State this build cannot read
    /// ([`AppState::read`]) is logged and dropped: the clients moved anyway.
    fn take_over(&mut self, _cx: &mut Ctx<'_>, _state: AppState) {}
    /// Another worker died without closing its clients (killed, crashed): these were its
    /// clients that had a uid, groups or a session, already forgotten by the registry. No
    /// `on_close` ran for them anywhere. Every surviving worker gets this call, so an app
    /// announces the loss to its own local clients only ([`Ctx::send_to_group_local`]).
    fn on_peer_lost(&mut self, _cx: &mut Ctx<'_>, _gone: &[(ClientId, ClientInfo)]) {}
    /// The app's own socket `n` (registered under [`io_token`]`(n)`) is ready. Sockets are
    /// edge-triggered: read or write until `WouldBlock`, or wake the loop to go on later.
    fn on_io(&mut self, _cx: &mut Ctx<'_>, _n: usize, _ready: IoReady) {}
    /// End of a loop turn, before the worker writes its queued output: write what the app
    /// batched during the turn on its own sockets.
    fn on_turn_end(&mut self, _cx: &mut Ctx<'_>) {}
    /// An admin command changed something the app relies on (an agent removed, the signing
    /// key rotated); every worker gets it, so an app acts on its own local clients.
    fn on_admin(&mut self, _cx: &mut Ctx<'_>, _event: &AdminEvent) {}
    /// Whether `name` (a uid or a group) is kept for connections this app authenticated
    /// itself: the gateway's HTTP API may then not bind, join, leave or dissolve it, so no
    /// backend call (or stolen key) can give a connection an identity the app did not grant.
    fn reserves_name(&self, _name: &str) -> bool {
        false
    }
    /// The transport limits this app needs (asked once, when the worker starts).
    fn transport(&self) -> Transport {
        Transport::default()
    }
}
