//! The worker's side of TLS: a listener's settings loaded at start, a new connection's
//! session and the input it may make rustls hold, the end of a handshake, and at a reload
//! the switch of established sessions to our record layer (whose keys can move) and the
//! close of one whose client changed keys after it moved.

use super::{close, input, Base};
use crate::config::{ListenSpec, Scheme};
use crate::connection::{ConnState, Framing};
use crate::gateway::client_id::ConnId;
use crate::protocol::websocket::close as ws_close;
use crate::state::CloseHow;
use crate::tls::session::TlsSession;
use crate::tls::Acceptor;

/// The TLS settings of listener `spec`, its PEM files read now (at worker start, before the
/// loop serves anyone).
pub(super) fn acceptor(spec: &ListenSpec) -> Result<Acceptor, String> {
    let files = spec
        .certs
        .as_ref()
        .ok_or_else(|| format!("{spec}: no certificate"))?;
    Acceptor::load(files, spec.scheme != Scheme::Text).map_err(|e| format!("{spec}: {e}"))
}

/// Give the new connection `id` its TLS session, counting what its handshake may make rustls
/// buffer against `limits.max_buffered_input`; false if it was closed for that.
pub(super) fn accepted(b: &mut Base, id: ConnId, session: Box<TlsSession>) -> bool {
    let reserve = session.counted();
    let Some(c) = b.core.get_mut(id) else {
        return false;
    };
    if c.scheme == Scheme::Text {
        // Connected for the app once the TLS handshake is done (`established`).
        c.state = ConnState::Handshake;
    }
    c.tls = Some(session);
    b.buffered_input += reserve;
    if b.buffered_input > b.core.limits.max_buffered_input {
        if let Some(skipped) = b.quiet.allow(b.core.now) {
            crate::warn!(
                "worker {}: limits.max_buffered_input reached; refusing a TLS handshake \
                 ({skipped} more since the last warning)",
                b.core.worker_id
            );
        }
        close::drop_conn(b, id.index());
        return false;
    }
    true
}

/// The TLS handshake of `id` is done (its reserve was given back by the session's recount): a
/// text connection becomes the app's client (as a plain one does when accepted).
pub(super) fn established(b: &mut Base, id: ConnId) {
    let idle = b.core.limits.idle_timeout;
    let now = b.core.now;
    let Some(c) = b.core.get_mut(id) else {
        return;
    };
    if c.framing != Framing::Text || c.state != ConnState::Handshake {
        return;
    }
    c.state = ConnState::Open;
    c.deadline = None;
    if !idle.is_zero() {
        b.core.arm_conn_timer(id.index(), now + idle);
    }
    input::connected(&mut b.core, b.app.as_mut(), id);
}

/// Before a hand-over: every established TLS session gives its keys up to our record layer
/// (`TlsSession::detach`), so it can move with its connection. One that cannot is left to
/// `close::unmovable` (closed with 1012), and so is a session still in its handshake: a
/// client that has not finished it gets no answer it could take for a working connection,
/// and reconnects (its handshake has at most a few round trips left to redo).
pub(super) fn detach_all(b: &mut Base) {
    for (_, c) in b.core.conns.iter_mut() {
        let Some(t) = &mut c.tls else {
            continue;
        };
        if t.handshaking() {
            continue;
        }
        if let Err(e) = t.detach() {
            crate::debug!("tls {}: stays with the retiring worker: {e}", c.remote);
        }
    }
}

/// The client of `id` changed its TLS keys (a TLS 1.3 KeyUpdate) on a session taken over at
/// a reload, which our record layer cannot follow: what it sent before was read; the
/// connection closes with 1012 (we can still write), so the client reconnects as after a
/// restart.
pub(super) fn rekeyed(b: &mut Base, id: ConnId) {
    if let Some(c) = b.core.get(id) {
        crate::info!(
            "worker {}: {} sent a TLS KeyUpdate after its connection was handed over at a \
             reload; our record layer cannot derive the next key, closing it with 1012",
            b.core.worker_id,
            c.remote
        );
    }
    b.core
        .request_close(id, CloseHow::Graceful(ws_close::SERVICE_RESTART));
}
