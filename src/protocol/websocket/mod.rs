//! Server side of RFC 6455 (WebSocket): opening handshake, frame encoding, the sans-I/O
//! message decoder, masking, incremental UTF-8 validation and close codes. No I/O here.
//!
//! No extension is ever negotiated, so RSV bits must be zero and permessage-deflate is declined.

pub mod close;
pub mod decoder;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;

pub use decoder::{Decoded, Decoder, Message, ProtocolError};
pub use frame::OpCode;
