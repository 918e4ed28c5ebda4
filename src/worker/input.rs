//! Turning received bytes into app events: HTTP requests and WebSocket upgrades, WebSocket
//! messages, text lines. The decoders are pure (src/protocol); this module applies their
//! verdicts to the connection (answers, state changes, closes) and calls the app.

use crate::api::{App, Ctx, HttpOutcome};
use crate::config::Scheme;
use crate::connection::{ConnState, Deflate, Framing, Proto};
use crate::gateway::client_id::ConnId;
use crate::protocol::http::request::{parse_request, Request, RequestLimits};
use crate::protocol::http::response::Response;
use crate::protocol::text::TextError;
use crate::protocol::websocket::close as ws_close;
use crate::protocol::websocket::decoder::{inflate_message, Decoded, Decoder, Message};
use crate::protocol::websocket::extensions;
use crate::protocol::websocket::frame::{self as ws_frame, OpCode};
use crate::protocol::websocket::handshake::{self, HandshakeConfig};
use crate::protocol::Payload;
use crate::state::{CloseHow, Core};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Handshake settings taken from the config once.
#[derive(Debug, Clone)]
pub(super) struct InputSettings {
    /// Allowed Origin values (empty = any).
    pub allowed_origins: Vec<String>,
    /// Subprotocols we speak.
    pub subprotocols: Vec<String>,
    /// HTTP request bounds.
    pub request_limits: RequestLimits,
    /// WebSocket message bound.
    pub max_message: usize,
    /// `gateway.secret_key` for the HTTP API on `api://` listeners.
    pub api_key: String,
    /// The client id forms of the HTTP API (GatewayWorker's too with `[gatewayworker]` on).
    pub api_ids: crate::api::http_api::Ids,
}

/// Run an app callback; a panic closes only `id` and is logged with its client id.
pub(super) fn guarded<R>(
    core: &mut Core,
    id: Option<ConnId>,
    what: &str,
    f: impl FnOnce(&mut Ctx<'_>) -> R,
) -> Option<R> {
    let r = catch_unwind(AssertUnwindSafe(|| f(&mut Ctx::new(core))));
    match r {
        Ok(v) => Some(v),
        Err(_) => {
            match id {
                Some(id) => {
                    let cid = core.client_id(id);
                    crate::error!(
                        "app panicked in {what} for client {cid}; closing that connection only"
                    );
                    core.request_close(id, CloseHow::Now);
                }
                None => crate::error!("app panicked in {what}"),
            }
            None
        }
    }
}

fn close_pending(core: &Core, id: ConnId) -> bool {
    core.pending_close.iter().any(|(i, _)| *i == id)
        || core
            .get(id)
            .is_none_or(|c| c.state != ConnState::Open && c.state != ConnState::Handshake)
}

/// Process `data` received on `id`; returns how many bytes were consumed (the rest is kept
/// for the next read). `proto` is the connection's decoder, taken out of it for the duration.
pub(super) fn process(
    core: &mut Core,
    app: &mut dyn App,
    set: &InputSettings,
    id: ConnId,
    proto: &mut Proto,
    data: &mut [u8],
) -> usize {
    let mut pos = 0;
    loop {
        if pos >= data.len() || close_pending(core, id) {
            return pos;
        }
        let high = core.limits.max_send_buffer / 2;
        if let Some(c) = core.get_mut(id).filter(|c| c.out.len() >= high) {
            // Back-pressure: this client's answers are backing up, so stop decoding its
            // requests (they stay buffered) and stop reading until the output drains.
            c.input.pause();
            return pos;
        }
        if core.get(id).is_some_and(|c| c.input.awaiting_app()) {
            return pos;
        }
        let rest = &mut data[pos..];
        let step = match proto {
            Proto::Http => http_step(core, app, set, id, proto, rest),
            Proto::Ws(dec) => ws_step(core, app, id, dec, rest),
            Proto::Text(codec) => match codec.decode(rest) {
                Ok(Some((line, n))) => {
                    core.stats.total_request += 1;
                    let msg = match std::str::from_utf8(line) {
                        Ok(s) => Payload::Text(s),
                        Err(_) => Payload::Binary(line),
                    };
                    let cid = core.client_id(id);
                    guarded(core, Some(id), "on_message", |cx| {
                        app.on_message(cx, cid, msg)
                    });
                    Some(n)
                }
                Ok(None) => None,
                Err(TextError::LineTooLong) => {
                    crate::warn!(
                        "text client {} sent a line over the limit; closing",
                        core.get(id)
                            .map(|c| c.remote.to_string())
                            .unwrap_or_default()
                    );
                    core.request_close(id, CloseHow::Now);
                    None
                }
            },
        };
        match step {
            Some(n) => pos += n,
            None => return pos,
        }
    }
}

fn ws_step(
    core: &mut Core,
    app: &mut dyn App,
    id: ConnId,
    dec: &mut Decoder,
    data: &mut [u8],
) -> Option<usize> {
    let limit = dec.max_message_size();
    match dec.decode(data) {
        Ok(Decoded::Partial) => None,
        Ok(Decoded::Consumed(n)) => Some(n),
        Ok(Decoded::Message(msg, n)) => {
            match msg {
                Message::Deflated { text, payload } => {
                    // The worker's one inflater, lent for this message (no per-connection state).
                    let mut inf = core.codecs.take_inflater();
                    let msg = match inflate_message(&mut inf, text, payload, limit) {
                        Ok(Message::Text(s)) => Ok(Payload::Text(s)),
                        Ok(Message::Binary(b)) => Ok(Payload::Binary(b)),
                        Ok(_) => Err(crate::protocol::websocket::ProtocolError::BadDeflate),
                        Err(e) => Err(e),
                    };
                    match msg {
                        Ok(p) => {
                            core.stats.total_request += 1;
                            let cid = core.client_id(id);
                            guarded(core, Some(id), "on_message", |cx| {
                                app.on_message(cx, cid, p)
                            });
                        }
                        Err(e) => core.request_close(id, CloseHow::Graceful(e.close_code())),
                    }
                    core.codecs.put_inflater(inf);
                }
                Message::Text(s) => {
                    core.stats.total_request += 1;
                    let cid = core.client_id(id);
                    guarded(core, Some(id), "on_message", |cx| {
                        app.on_message(cx, cid, Payload::Text(s))
                    });
                }
                Message::Binary(b) => {
                    core.stats.total_request += 1;
                    let cid = core.client_id(id);
                    guarded(core, Some(id), "on_message", |cx| {
                        app.on_message(cx, cid, Payload::Binary(b))
                    });
                }
                Message::Ping(p) => {
                    let mut head = [0u8; 10];
                    let hl = ws_frame::server_header(OpCode::Pong, p.len(), &mut head);
                    core.queue_raw(id.index(), &head[..hl], p);
                }
                Message::Pong(_) => {}
                Message::Close(code, _reason) => {
                    // RFC 6455 §5.5.1: answer with a close frame, echoing the status code.
                    let echo = code.unwrap_or(ws_close::NORMAL);
                    core.request_close(id, CloseHow::Graceful(echo));
                    return Some(n);
                }
            }
            Some(n)
        }
        Err(e) => {
            core.request_close(id, CloseHow::Graceful(e.close_code()));
            None
        }
    }
}

fn http_step(
    core: &mut Core,
    app: &mut dyn App,
    set: &InputSettings,
    id: ConnId,
    proto: &mut Proto,
    data: &mut [u8],
) -> Option<usize> {
    let (req, n) = match parse_request(data, &set.request_limits) {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => {
            reply_and_close(core, id, Response::error(e.status()));
            return None;
        }
    };
    let scheme = core.get(id)?.scheme;
    if scheme == Scheme::Api {
        // The API listener serves the gateway calls and nothing else: no pages, no upgrades.
        core.stats.total_request += 1;
        let resp = if crate::api::http_api::is_api_path(&req.path) {
            let reserved = |name: &str| app.reserves_name(name);
            guarded(core, Some(id), "gateway http api", |cx| {
                crate::api::http_api::handle(cx, &set.api_key, &req, &reserved, &set.api_ids)
            })?
        } else {
            Response::error(404)
        };
        return answer(core, id, &req, resp, n);
    }
    if handshake::is_upgrade(&req) {
        upgrade(core, app, set, id, proto, &req);
        return Some(n);
    }
    core.stats.total_request += 1;
    let cid = core.client_id(id);
    let outcome = guarded(core, Some(id), "on_http", |cx| app.on_http(cx, cid, &req))?;
    let resp = match (outcome, scheme) {
        (HttpOutcome::Respond(r), _) => r,
        (HttpOutcome::Pending, _) => {
            // The app answers later with `Ctx::respond_http`; stop reading requests until then.
            if let Some(c) = core.get_mut(id) {
                c.input = crate::connection::Input::AwaitingApp;
            }
            return Some(n);
        }
        (HttpOutcome::NotMine, Scheme::Websocket) => {
            // A plain request on a WebSocket port: say what is expected (RFC 6455 §4.2.2).
            let r = Response::text(426, "this port speaks WebSocket\n")
                .header("Upgrade", "websocket")
                .header("Sec-WebSocket-Version", "13");
            reply_and_close(core, id, r);
            return None;
        }
        (HttpOutcome::NotMine, _) => builtin_page(&req),
    };
    answer(core, id, &req, resp, n)
}

/// Queue `resp` to `req` (`n` bytes long), keeping the connection if the request allows it.
fn answer(core: &mut Core, id: ConnId, req: &Request, resp: Response, n: usize) -> Option<usize> {
    let keep = req.keep_alive() && core.stopping.is_none();
    let mut out = Vec::new();
    resp.write_to(&mut out, keep);
    core.queue_raw(id.index(), &out, &[]);
    if !keep {
        core.request_close(id, CloseHow::Graceful(ws_close::NORMAL));
        return None;
    }
    if let Some(c) = core.get_mut(id) {
        c.requests_served += 1;
    }
    Some(n)
}

fn builtin_page(req: &Request) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") | ("HEAD", "/") => Response::text(
            200,
            concat!("kefu ", env!("CARGO_PKG_VERSION"), " is running\n"),
        ),
        ("GET", _) | ("HEAD", _) => Response::error(404),
        _ => Response::error(405),
    }
}

fn reply_and_close(core: &mut Core, id: ConnId, resp: Response) {
    let mut out = Vec::new();
    resp.write_to(&mut out, false);
    core.queue_raw(id.index(), &out, &[]);
    core.request_close(id, CloseHow::Graceful(ws_close::NORMAL));
}

fn upgrade(
    core: &mut Core,
    app: &mut dyn App,
    set: &InputSettings,
    id: ConnId,
    proto: &mut Proto,
    req: &Request,
) {
    let hcfg = HandshakeConfig {
        allowed_origins: &set.allowed_origins,
        subprotocols: &set.subprotocols,
    };
    let acc = match handshake::check(req, &hcfg) {
        Ok(a) => a,
        Err(e) => {
            let bytes = e.response();
            core.queue_raw(id.index(), &bytes, &[]);
            core.request_close(id, CloseHow::Graceful(ws_close::NORMAL));
            return;
        }
    };
    let cid = core.client_id(id);
    let verdict = guarded(core, Some(id), "on_websocket_connect", |cx| {
        app.on_websocket_connect(cx, cid, req)
    });
    match verdict {
        Some(Ok(())) => {}
        Some(Err(reject)) => return reply_and_close(core, id, Response::error(reject.0)),
        None => return,
    }
    let mut decoder = Box::new(Decoder::new(set.max_message));
    let mut extra = Vec::new();
    let offered = core.get(id).is_some_and(|c| c.deflate == Deflate::Allowed);
    let agreed = offered
        .then(|| {
            extensions::negotiate(
                req.headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-extensions"))
                    .map(|(_, v)| v.as_str()),
            )
        })
        .flatten();
    let deflate = match agreed {
        Some(a) => {
            extra.push(("Sec-WebSocket-Extensions".to_string(), a.response()));
            decoder.enable_deflate();
            Deflate::On(a.server_window_bits)
        }
        None => Deflate::Off,
    };
    let bytes = handshake::response_101(&acc, &extra);
    core.queue_raw(id.index(), &bytes, &[]);
    *proto = Proto::Ws(decoder);
    let idle = core.limits.idle_timeout;
    let now = core.now;
    if let Some(c) = core.get_mut(id) {
        c.framing = Framing::Ws;
        c.deflate = deflate;
        c.state = ConnState::Open;
        c.deadline = None;
    }
    if !idle.is_zero() {
        core.arm_conn_timer(id.index(), now + idle);
    }
    connected(core, app, id);
    if let Some(code) = core.stopping {
        // Accepted before the worker was told to stop: answered, then closed like the rest.
        core.request_close(id, CloseHow::Graceful(code));
    }
}

/// A connection became a gateway client: register it cluster-wide and tell the app. With a
/// login deadline, the app must authenticate it in time ([`Ctx::authenticated`]).
pub(super) fn connected(core: &mut Core, app: &mut dyn App, id: ConnId) {
    core.local_up(id);
    let login = core.limits.login_timeout;
    let by = (!login.is_zero()).then(|| core.now + login);
    if let Some(c) = core.get_mut(id) {
        c.app_connected = true;
        c.deadline = by;
    }
    if let Some(at) = by {
        core.arm_conn_timer(id.index(), at);
    }
    let cid = core.client_id(id);
    guarded(core, Some(id), "on_connect", |cx| app.on_connect(cx, cid));
}
