//! The applications, each written against `crate::api` only: `echo`, `chat` (workerman-chat's
//! protocol), `bridge` (the seeds' backend patterns) and `kefu` (customer service).

pub mod bridge;
pub mod chat;
pub mod echo;
pub mod gatewayworker;
pub mod kefu;
