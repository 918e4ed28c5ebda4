//! The worker's side of TLS: a listener's settings loaded at start, a new connection's
//! session and the input it may make rustls hold, and the end of a handshake.

use super::{close, input, Base};
use crate::config::{ListenSpec, Scheme};
use crate::connection::{ConnState, Framing};
use crate::gateway::client_id::ConnId;
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
