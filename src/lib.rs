//! kefu: a real-time customer-service server.
//!
//! Layout: `master/` supervises worker processes, `cli/` is the admin command line,
//! `worker/` runs one mio event loop per process, `connection/` owns per-socket state and
//! buffers, `protocol/` holds the pure (no I/O) WebSocket, HTTP and text codecs, `app/`
//! holds the applications run on top (echo, chat), `sys/` is the only place that calls libc.

pub mod log;

pub mod app;
pub mod cli;
pub mod config;
pub mod connection;
pub mod gateway;
pub mod ipc;
pub mod master;
pub mod protocol;
pub mod store;
pub mod sys;
pub mod web;
pub mod worker;
