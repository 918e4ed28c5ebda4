//! Server side of RFC 6455 (WebSocket): opening handshake, frame encoding, the sans-I/O
//! message decoder, masking, incremental UTF-8 validation and close codes. No I/O here.
//!
//! permessage-deflate (RFC 7692) is negotiated in `extensions` and coded in `deflate`; RSV1
//! marks a compressed message only where it was negotiated, RSV2 and RSV3 are always refused.

pub mod close;
pub mod decoder;
pub mod deflate;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;

pub use decoder::{Decoded, Decoder, Message, ProtocolError};
pub use frame::OpCode;
