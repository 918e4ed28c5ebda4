//! Pure protocol code: bytes in, frames or typed errors out. No sockets, no clocks, no logging.
