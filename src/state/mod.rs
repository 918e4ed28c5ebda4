//! The worker's state, below the app API and above the gateway's data: [`Core`] (connections,
//! their output queues, the registry replica, the bus links, timers), [`Encoded`] messages,
//! and [`apply`], which turns a message from another worker into a state change.
//!
//! A send runs downward from here: an owner-side change updates the registry and goes out on
//! the bus; a delivery is encoded once and queued on connection buffers; the worker loop
//! flushes both at the end of the turn.

pub(crate) mod apply;
pub(crate) mod core;
pub(crate) mod deflate;
pub(crate) mod encoded;
pub(crate) mod handover;
pub(crate) mod timer;

pub(crate) use self::core::{CloseHow, Core};
pub(crate) use encoded::Encoded;
