//! Applications run by the workers, and the event trait they implement.
//!
//! An app sees connections only through [`ClientId`]s and the [`Ctx`] handle it is given on every
//! event; it never touches sockets. Everything an app does (send, close, join a group, set a
//! timer) is queued on the worker and carried out by the event loop.

pub mod bridge;
pub mod chat;
pub mod echo;
pub mod kefu;

use crate::gateway::registry::ClientInfo;
use crate::protocol::http::request::Request;
use crate::protocol::http::response::Response;
use crate::worker::ctx::Ctx;

pub use crate::gateway::client_id::ClientId;
pub use crate::worker::ctx::TimerId;

/// One message received from a client.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A WebSocket text message (valid UTF-8) or a text-protocol line that is valid UTF-8.
    Text(&'a str),
    /// A WebSocket binary message, or a text-protocol line that is not valid UTF-8.
    Binary(&'a [u8]),
}

impl<'a> Payload<'a> {
    /// The raw bytes.
    pub fn bytes(&self) -> &'a [u8] {
        match *self {
            Payload::Text(s) => s.as_bytes(),
            Payload::Binary(b) => b,
        }
    }
}

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
    /// The worker has bound its listeners; accepting starts after this returns.
    fn on_worker_start(&mut self, _cx: &mut Ctx<'_>) {}
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
    /// The worker is stopping (stop or reload).
    fn on_worker_stop(&mut self, _cx: &mut Ctx<'_>) {}
    /// Another worker died without closing its clients (killed, crashed): these were its
    /// clients that had a uid, groups or a session, already forgotten by the registry. No
    /// `on_close` ran for them anywhere. Every surviving worker gets this call, so an app
    /// announces the loss to its own local clients only (`Core::deliver_groups`).
    fn on_peer_lost(&mut self, _cx: &mut Ctx<'_>, _gone: &[(ClientId, ClientInfo)]) {}
}

/// Build the app named `name`, with the config it may need.
pub fn by_name(name: &str, cfg: &crate::config::Config) -> Option<Box<dyn App>> {
    match name {
        "echo" => Some(Box::new(echo::Echo)),
        "chat" => Some(Box::new(chat::Chat::default())),
        "kefu" => Some(Box::new(kefu::Kefu::new(cfg))),
        "bridge" => Some(Box::new(bridge::Bridge::new(cfg))),
        _ => None,
    }
}
