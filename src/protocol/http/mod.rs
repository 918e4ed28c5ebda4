//! The HTTP/1.1 subset kefu serves: request parsing (for the WebSocket upgrade, pages and the
//! JSON API) and response serialization. No I/O here.

pub mod request;
pub mod response;

pub use request::{parse_request, HttpError, Request, RequestLimits};
pub use response::{reason, Response};
