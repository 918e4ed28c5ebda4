//! kefu: a real-time customer-service server.
//!
//! Layers, each importing only the ones listed before it:
//! - `sys` (the only libc and `unsafe` code), `log`, `protocol` (pure codecs: bytes in,
//!   frames or typed errors out), `config`, `ipc` (master/worker/CLI messages), `tls`
//!   (rustls for the listeners);
//! - `connection`: one socket's state and its bounded buffers;
//! - `gateway`: the gateway's data (client ids, the replicated registry, the inter-worker bus
//!   and its codec);
//! - `state`: one worker's state (`Core`), local delivery and applying bus messages;
//! - `api`: what apps are written against (`App`, `Ctx`, the gateway calls, the HTTP API);
//! - `worker`: the mio event loop (accept, read/decode, flush, timers, heartbeats, a reload's
//!   hand-over); beside it `store`/`web` (the kefu app's storage and pages) and `cluster`
//!   (the node's relay to other nodes over Redis, run by the master);
//! - `app` (echo, chat, bridge, kefu, gatewayworker), on top of `api`;
//! - `master` (supervision, reload, stop) and `cli` (the admin commands).
//!
//! The binary (`main.rs`) picks the app, so the worker loop never names a concrete app.
//! See `docs/architecture.md`.

// The library's own discipline (not the tests' or benches'): an item is `pub` only if the
// binary, a bench, a fuzz target or a test needs it, and everything reachable prints in logs.
#![warn(unreachable_pub, missing_debug_implementations)]

pub mod log;

pub mod api;
pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod gateway;
pub mod ipc;
pub(crate) mod master;
pub mod protocol;
pub(crate) mod state;
pub(crate) mod store;
pub mod sys;
pub mod tls;
pub(crate) mod web;
pub mod worker;
