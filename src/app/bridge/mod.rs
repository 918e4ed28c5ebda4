//! `bridge`: hand clients to a business backend, the seeds' two integration patterns, with no
//! business logic of its own.
//!
//! - Seed 001 (GatewayClient/ThinkPHP): on connect the client gets
//!   `{"type":"init","client_id":"..."}` (or `["init",{"client_id":"..."}]` with
//!   `bridge.greeting = "array"`, as seed 001's Events.php sends it); the page posts that id to its own backend, which then
//!   calls `bind_uid` / `join_group` / `send_to_group` over the HTTP API (`/gateway/...`).
//! - Seed 002 (forward to a backend): with `bridge.backend_url` set, every message is POSTed as
//!   `{"client_id","message","session","uid"}` and a 2xx non-empty answer is sent back to the
//!   client; failures give the client `{"type":"error","code":...,"msg":...}`.
//!
//! The loop never blocks: backend calls run on a small thread pool ([`backend`]); results come
//! back through a channel and the worker's waker (`on_wake`). Per client, calls are made one at
//! a time in message order, so answers arrive in the order the messages were sent. At most
//! `max_in_flight` messages per worker are running or waiting; beyond that the client gets
//! `{"type":"error","code":503,"msg":"backend busy"}` at once.

pub mod backend;

use crate::api::Ctx;
use crate::api::{App, AppState, ClientId, Payload, StartError};
use crate::config::{BridgeConfig, Config};
use backend::{Done, Job, Outcome, Pool, Target};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};

/// Backend calls run in parallel per worker process.
pub const POOL_THREADS: usize = 4;

#[derive(Serialize)]
struct Init<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    client_id: &'a str,
}

#[derive(Serialize)]
struct ErrorOut {
    #[serde(rename = "type")]
    kind: &'static str,
    code: u16,
    msg: &'static str,
}

#[derive(Serialize)]
struct BinaryMessage {
    binary_base64: String,
}

/// What the backend receives for each client message.
#[derive(Serialize)]
struct BackendRequest<'a> {
    client_id: String,
    message: Value,
    session: &'a Map<String, Value>,
    uid: Option<&'a str>,
}

/// A message kept until its turn comes (the client's previous call is still running).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
enum Held {
    Text(String),
    Binary(#[serde(with = "crate::protocol::b64")] Vec<u8>),
}

/// The name the bridge's state is written under at a reload.
const APP: &str = "bridge";
/// The shape of [`Carried`]; bump it when it changes.
const VERSION: u32 = 1;

/// What crosses a reload: the messages still waiting behind a running call, by client id
/// (text form). Running calls themselves cannot move (a pool thread holds the backend's
/// connection): the reload waits for them (`App::settled`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Carried {
    waiting: Vec<(String, Vec<Held>)>,
}

impl Held {
    fn from_payload(p: Payload<'_>) -> Held {
        match p {
            Payload::Text(s) => Held::Text(s.to_owned()),
            Payload::Binary(b) => Held::Binary(b.to_vec()),
        }
    }

    /// JSON text is forwarded parsed, other text as a string, bytes as base64.
    fn to_json(&self) -> Value {
        match self {
            Held::Text(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
            Held::Binary(b) => serde_json::to_value(BinaryMessage {
                binary_base64: base64::engine::general_purpose::STANDARD.encode(b),
            })
            .unwrap_or(Value::Null),
        }
    }
}

/// The bridge app.
#[derive(Debug)]
pub struct Bridge {
    cfg: BridgeConfig,
    target: Option<Target>,
    pool: Option<Pool>,
    /// Messages running or waiting, this worker.
    in_flight: usize,
    /// Clients with a call running; their later messages wait here in order.
    waiting: HashMap<ClientId, VecDeque<Held>>,
    /// Its clients moved to the successor (reload): answers still coming are nobody's.
    handed_over: bool,
}

fn send_json<T: Serialize>(cx: &mut Ctx<'_>, id: ClientId, v: &T) {
    if let Ok(s) = serde_json::to_string(v) {
        cx.send_to_client(id, Payload::Text(&s));
    }
}

fn send_error(cx: &mut Ctx<'_>, id: ClientId, code: u16, msg: &'static str) {
    send_json(
        cx,
        id,
        &ErrorOut {
            kind: "error",
            code,
            msg,
        },
    );
}

impl Bridge {
    /// A bridge configured from `[bridge]`.
    pub fn new(cfg: &Config) -> Bridge {
        Bridge {
            cfg: cfg.bridge.clone(),
            target: None,
            pool: None,
            in_flight: 0,
            waiting: HashMap::new(),
            handed_over: false,
        }
    }

    fn forwarding(&self) -> bool {
        !self.cfg.backend_url.is_empty()
    }

    /// Start the backend call for `msg` of `id` (a slot in `in_flight` is already taken).
    fn dispatch(&mut self, cx: &mut Ctx<'_>, id: ClientId, msg: &Held) {
        let (Some(pool), Some(target)) = (&self.pool, &self.target) else {
            return self.fail_all(cx, id);
        };
        // Built at dispatch time, so a session or uid the backend changed meanwhile is current.
        let empty = Map::new();
        let req = BackendRequest {
            client_id: id.to_string(),
            message: msg.to_json(),
            session: cx.get_session(id).unwrap_or(&empty),
            uid: cx.get_uid_by_client_id(id),
        };
        let body = serde_json::to_vec(&req).unwrap_or_default();
        let job = Job {
            client: id,
            target: target.clone(),
            body,
            timeout: self.cfg.backend_timeout,
        };
        if !pool.submit(job) {
            // The pool's threads are gone (cannot happen short of a panic in one of them).
            return self.fail_all(cx, id);
        }
        self.waiting.entry(id).or_default();
    }

    /// The call for `id` could not be started: fail it and whatever waits behind it.
    fn fail_all(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        let queued = self.waiting.remove(&id).map_or(0, |q| q.len());
        for _ in 0..=queued {
            self.in_flight = self.in_flight.saturating_sub(1);
            send_error(cx, id, 502, "backend failed");
        }
    }

    fn finish(&mut self, cx: &mut Ctx<'_>, done: Done) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let id = done.client;
        match done.outcome {
            Outcome::Answer(status, body) if (200..300).contains(&status) => {
                if !body.is_empty() {
                    match std::str::from_utf8(&body) {
                        Ok(s) => cx.send_to_client(id, Payload::Text(s)),
                        Err(_) => cx.send_to_client(id, Payload::Binary(&body)),
                    };
                }
            }
            Outcome::Answer(status, _) => send_error(cx, id, status, "backend failed"),
            Outcome::TimedOut => send_error(cx, id, 504, "backend timed out"),
            Outcome::Failed => send_error(cx, id, 502, "backend failed"),
        }
        // Next message of this client, if any (absent entry: the client left meanwhile).
        let next = match self.waiting.get_mut(&id) {
            Some(q) => q.pop_front(),
            None => return,
        };
        match next {
            Some(m) => self.dispatch(cx, id, &m),
            None => {
                self.waiting.remove(&id);
            }
        }
    }
}

impl App for Bridge {
    fn on_worker_start(&mut self, cx: &mut Ctx<'_>) -> Result<(), StartError> {
        if !self.forwarding() {
            return Ok(());
        }
        // A URL that cannot work fails the start: serving would answer every message with a
        // backend error, and the admin would learn why only from the log.
        let t = Target::parse(&self.cfg.backend_url)
            .map_err(|e| format!("bridge.backend_url {:?}: {e}", self.cfg.backend_url))?;
        self.target = Some(t);
        self.pool = Some(Pool::start(POOL_THREADS, cx.waker()));
        Ok(())
    }

    fn on_connect(&mut self, cx: &mut Ctx<'_>, id: ClientId) {
        let me = id.to_string();
        if self.cfg.greeting == crate::config::Greeting::Array {
            let v = serde_json::json!(["init", {"client_id": me}]);
            cx.send_to_client(id, Payload::Text(&v.to_string()));
            return;
        }
        send_json(
            cx,
            id,
            &Init {
                kind: "init",
                client_id: &me,
            },
        );
    }

    fn on_message(&mut self, cx: &mut Ctx<'_>, id: ClientId, msg: Payload<'_>) {
        if !self.forwarding() {
            // Seed 001: clients talk to their backend over HTTP; nothing to do here.
            return;
        }
        if self.in_flight >= self.cfg.max_in_flight {
            return send_error(cx, id, 503, "backend busy");
        }
        self.in_flight += 1;
        let held = Held::from_payload(msg);
        match self.waiting.get_mut(&id) {
            // A call of this client is running: keep the order, wait for it.
            Some(q) => q.push_back(held),
            None => self.dispatch(cx, id, &held),
        }
    }

    fn on_close(&mut self, _cx: &mut Ctx<'_>, id: ClientId) {
        // Waiting messages are dropped; a running call finishes and its answer is discarded.
        if let Some(q) = self.waiting.remove(&id) {
            self.in_flight = self.in_flight.saturating_sub(q.len());
        }
    }

    fn on_wake(&mut self, cx: &mut Ctx<'_>) {
        let done: Vec<Done> = match &self.pool {
            Some(p) => p.drain(),
            None => return,
        };
        if self.handed_over {
            return;
        }
        for d in done {
            self.finish(cx, d);
        }
    }

    fn settled(&self) -> bool {
        // A backend answer owed to a client must be sent by the app holding its connection.
        self.in_flight == 0
    }

    fn hand_over(&mut self, cx: &mut Ctx<'_>) -> Option<AppState> {
        self.handed_over = true;
        self.in_flight = 0;
        let mut c = Carried::default();
        for (id, q) in self.waiting.drain() {
            // Its call outlived the reload's settle bound: the client hears it got no answer
            // (before anything the successor sends it); what waited behind it goes on there.
            send_error(cx, id, 504, "backend timed out");
            if !q.is_empty() {
                c.waiting.push((id.to_string(), q.into()));
            }
        }
        if c.waiting.is_empty() {
            return None;
        }
        AppState::new(APP, VERSION, &c)
            .map_err(|e| crate::warn!("bridge: waiting messages not carried over: {e}"))
            .ok()
    }

    fn take_over(&mut self, cx: &mut Ctx<'_>, state: AppState) {
        let c: Carried = match state.read(APP, VERSION) {
            Ok(c) => c,
            Err(e) => return crate::warn!("bridge: carried messages ignored ({e})"),
        };
        for (id, q) in c.waiting {
            // Only clients adopted here (one that failed to move is gone).
            let Some(id) = ClientId::parse(&id).filter(|&id| cx.remote_addr(id).is_some()) else {
                continue;
            };
            let mut q = VecDeque::from(q);
            let Some(first) = q.pop_front() else {
                continue;
            };
            // Taken over whatever `max_in_flight` says: each was already accepted.
            self.in_flight += 1 + q.len();
            self.dispatch(cx, id, &first);
            if let Some(w) = self.waiting.get_mut(&id) {
                w.extend(q);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_json_forms() {
        assert_eq!(
            Held::Text("{\"a\":1}".into()).to_json(),
            serde_json::json!({"a":1})
        );
        assert_eq!(Held::Text("hi".into()).to_json(), serde_json::json!("hi"));
        assert_eq!(
            Held::Binary(vec![0, 1]).to_json(),
            serde_json::json!({"binary_base64":"AAE="})
        );
    }
}
