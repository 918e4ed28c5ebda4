//! One connection of the inner port or the Register: what it is, its bounded buffers, and its
//! non-blocking reads and writes.

use crate::protocol::text::LineCodec;
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// What a connection is, as far as it has shown.
#[derive(Debug)]
pub(super) enum Kind {
    /// Inner peer that has not shown the secret yet (or none is needed).
    Inner { authorized: bool },
    /// A BusinessWorker (its key is in the routes).
    Business,
    /// The Register's peer that has not spoken yet.
    RegPeer,
    /// A gateway registered with our Register, with its address.
    RegGateway { address: String },
    /// A BusinessWorker or GatewayClient asking our Register for addresses.
    RegWorker,
    /// Our link to a Register (the index of its address), connected or still connecting.
    RegLink { at: usize, connected: bool },
}

/// One connection.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) stream: TcpStream,
    pub(super) kind: Kind,
    /// Tells this connection from a later one in the same slot.
    pub(super) gen: u64,
    pub(super) inbuf: Vec<u8>,
    pub(super) out: Vec<u8>,
    pub(super) lines: LineCodec,
    /// When it must have shown who it is.
    pub(super) deadline: Option<Instant>,
    pub(super) remote: SocketAddr,
}

/// What a read turn ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Got {
    /// Bytes appended to `inbuf`; `full` when the buffer was filled (more may wait).
    Data { full: bool },
    /// Nothing more to read now.
    Drained,
    /// EOF or an error: close it.
    Gone,
}

/// What a write turn ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wrote {
    /// All written, or the socket is full (writable readiness will come).
    Ok,
    /// The connection failed: close it.
    Gone,
}

impl Peer {
    /// One read into `scratch`, appended to `inbuf`.
    pub(super) fn read_once(&mut self, scratch: &mut [u8]) -> Got {
        loop {
            return match self.stream.read(scratch) {
                Ok(0) => Got::Gone,
                Ok(n) => {
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    Got::Data {
                        full: n == scratch.len(),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Got::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => Got::Gone,
            };
        }
    }

    /// Write what is queued, until done or the socket is full.
    pub(super) fn write_out(&mut self) -> Wrote {
        let mut done = 0;
        let r = loop {
            if done == self.out.len() {
                break Wrote::Ok;
            }
            match self.stream.write(&self.out[done..]) {
                Ok(0) => break Wrote::Gone,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Wrote::Ok,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break Wrote::Gone,
            }
        };
        self.out.drain(..done);
        r
    }
}
