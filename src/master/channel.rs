//! A non-blocking JSON-lines link over a unix stream: used for each worker's control socket and
//! for each CLI client of the control socket. Reads into a [`LineBuf`], writes through a queue so
//! a slow peer never blocks the master.

use crate::ipc::{encode, LineBuf, LineError};
use mio::net::UnixStream;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// One end of a control link.
#[derive(Debug)]
pub(crate) struct Channel {
    /// The socket, registered with the master's poll.
    pub stream: UnixStream,
    rbuf: LineBuf,
    wbuf: Vec<u8>,
    /// Descriptors to attach to the next bytes written, in order (each goes out no later than
    /// the message that names it, which is all the receiver needs).
    fds: VecDeque<OwnedFd>,
    /// The peer closed its end or the link failed: nothing more will be read or written.
    pub closed: bool,
    /// Writing failed (the peer is going away): queued output is dropped, but what the peer
    /// already sent (say, why it failed) is still read.
    write_failed: bool,
}

impl Channel {
    /// Wrap a connected, non-blocking stream.
    pub(crate) fn new(stream: UnixStream) -> Channel {
        Channel {
            stream,
            rbuf: LineBuf::default(),
            wbuf: Vec::new(),
            fds: VecDeque::new(),
            closed: false,
            write_failed: false,
        }
    }

    /// Read everything available (until WouldBlock or EOF); decoded messages come from [`Self::next_msg`].
    pub(crate) fn fill(&mut self) {
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
    pub(crate) fn next_msg<T: for<'de> Deserialize<'de>>(
        &mut self,
    ) -> Result<Option<T>, LineError> {
        self.rbuf.next_msg()
    }

    /// Queue `msg` and write as much as the socket takes now.
    pub(crate) fn send<T: Serialize>(&mut self, msg: &T) {
        if self.closed || self.write_failed {
            return;
        }
        self.wbuf.extend_from_slice(&encode(msg));
        self.flush();
    }

    /// Queue `msg` with a descriptor attached (SCM_RIGHTS).
    pub(crate) fn send_with_fd<T: Serialize>(&mut self, msg: &T, fd: OwnedFd) {
        if self.closed || self.write_failed {
            return;
        }
        self.wbuf.extend_from_slice(&encode(msg));
        self.fds.push_back(fd);
        self.flush();
    }

    /// Write queued bytes until done or WouldBlock (the rest goes out on the next writable event).
    pub(crate) fn flush(&mut self) {
        while !self.wbuf.is_empty() && !self.closed && !self.write_failed {
            let r = match self.fds.front() {
                Some(fd) => {
                    crate::sys::fdpass::send_with_fd(&self.stream, &self.wbuf, fd.as_raw_fd())
                }
                None => self.stream.write(&self.wbuf),
            };
            if matches!(r, Ok(n) if n > 0) {
                // The kernel holds its own reference now; ours can go.
                self.fds.pop_front();
            }
            match r {
                Ok(n) if n > 0 => {
                    self.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(_) | Err(_) => {
                    self.write_failed = true;
                    self.wbuf.clear();
                    self.fds.clear();
                }
            }
        }
    }

    /// Everything queued has been written.
    pub(crate) fn flushed(&self) -> bool {
        self.wbuf.is_empty()
    }
}
