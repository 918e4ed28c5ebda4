//! Load scenarios; each exposes clap `*Args` and `run(&Args) -> Result<Outcome, LoadError>`.

pub mod broadcast;
pub mod chat;
pub mod connect;
pub mod echo;
pub mod kefu;
pub mod kefu_client;
pub mod kefu_proto;
pub mod private;
