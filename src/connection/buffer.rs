//! The outgoing byte queue of one connection.
//!
//! Messages queued during a loop turn are appended here and written with one `write` at the
//! end of the turn (write coalescing). A buffer that grew for a burst is given back once it
//! drains, so 100k idle connections cost no buffer memory.

use std::io::{self, Write};

/// Capacity kept after a drain; larger buffers are freed.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Outgoing bytes not yet written to the socket.
#[derive(Debug, Default)]
pub struct OutBuf {
    buf: Vec<u8>,
    pos: usize,
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything was written.
    Done,
    /// The socket is full; wait for a writable event.
    Blocked,
}

impl OutBuf {
    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queue bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Queue two slices (a frame header and its payload) without building a temporary.
    pub fn push2(&mut self, head: &[u8], body: &[u8]) {
        self.buf.reserve(head.len() + body.len());
        self.buf.extend_from_slice(head);
        self.buf.extend_from_slice(body);
    }

    /// Write as much as the socket takes; returns bytes written and whether all went out.
    pub fn flush_to(&mut self, w: &mut impl Write) -> io::Result<(usize, Flush)> {
        let mut written = 0;
        while self.pos < self.buf.len() {
            match w.write(&self.buf[self.pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pos += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.compact();
                    return Ok((written, Flush::Blocked));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        self.pos = 0;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        Ok((written, Flush::Done))
    }

    /// Drop already-written bytes from the front once they are the bigger part of the buffer.
    fn compact(&mut self) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call and then says WouldBlock once.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        block_next: bool,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.block_next {
                self.block_next = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.block_next = true;
            let n = b.len().min(self.cap);
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order() {
        let mut o = OutBuf::default();
        o.push(b"hello ");
        o.push2(b"wor", b"ld");
        let mut w = Trickle {
            got: vec![],
            cap: 4,
            block_next: false,
        };
        let mut rounds = 0;
        loop {
            rounds += 1;
            let (_, f) = o.flush_to(&mut w).unwrap();
            if f == Flush::Done {
                break;
            }
            o.push(b"");
        }
        assert!(rounds > 1);
        assert_eq!(w.got, b"hello world");
        assert!(o.is_empty());
    }
}
