//! A non-blocking JSON-lines link over a unix stream: used for each worker's control socket and
//! for each CLI client of the control socket. Reads into a [`LineBuf`], writes through a queue so
//! a slow peer never blocks the master.

use crate::ipc::{encode, LineBuf, LineError};
use mio::net::UnixStream;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// One end of a control link.
#[derive(Debug)]
pub struct Channel {
    /// The socket, registered with the master's poll.
    pub stream: UnixStream,
    rbuf: LineBuf,
    wbuf: Vec<u8>,
    /// The peer closed its end or the link failed: nothing more will be read or written.
    pub closed: bool,
}

impl Channel {
    /// Wrap a connected, non-blocking stream.
    pub fn new(stream: UnixStream) -> Channel {
        Channel {
            stream,
            rbuf: LineBuf::default(),
            wbuf: Vec::new(),
            closed: false,
        }
    }

    /// Read everything available (until WouldBlock or EOF); decoded messages come from [`Self::next_msg`].
    pub fn fill(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        while !self.closed {
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.rbuf.extend(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => self.closed = true,
            }
        }
    }

    /// The next complete message already read, if any.
    pub fn next_msg<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>, LineError> {
        self.rbuf.next()
    }

    /// Queue `msg` and write as much as the socket takes now.
    pub fn send<T: Serialize>(&mut self, msg: &T) {
        if self.closed {
            return;
        }
        self.wbuf.extend_from_slice(&encode(msg));
        self.flush();
    }

    /// Write queued bytes until done or WouldBlock (the rest goes out on the next writable event).
    pub fn flush(&mut self) {
        while !self.wbuf.is_empty() && !self.closed {
            match self.stream.write(&self.wbuf) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => self.closed = true,
            }
        }
    }

    /// Everything queued has been written.
    pub fn flushed(&self) -> bool {
        self.wbuf.is_empty()
    }
}
