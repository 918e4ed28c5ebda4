//! CLI clients on the control socket ([`Clients`]): accept them, read one request, answer
//! it, close.

use super::*;

/// More simultaneous CLI clients than this are refused (they are admins, not traffic).
const MAX_CLIENTS: usize = 256;

/// A connected CLI client.
#[derive(Debug)]
struct Client {
    chan: Channel,
    /// A reply was queued: close once it is flushed.
    replied: bool,
}

/// The control socket and the CLI clients connected to it (token `CLIENT_BASE + key`).
#[derive(Debug)]
pub(super) struct Clients {
    listener: mio::net::UnixListener,
    slab: Slab<Client>,
}

impl Clients {
    pub(super) fn new(listener: mio::net::UnixListener) -> Clients {
        Clients {
            listener,
            slab: Slab::new(),
        }
    }

    pub(super) fn accept(&mut self, poll: &Poll) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    // The socket is 0600, but its directory, a lax umask at an earlier bind or
                    // a copied path could still let another user reach it: the kernel's record
                    // of who connected decides, not the file mode alone.
                    let me = crate::sys::process::euid();
                    match crate::sys::socket::peer_uid(&stream) {
                        Ok(uid) if uid == me => {}
                        Ok(uid) => {
                            warn!("control socket: refused a client with uid {uid} (ours is {me})");
                            continue;
                        }
                        Err(e) => {
                            warn!("control socket: cannot check a client's uid, refused: {e}");
                            continue;
                        }
                    }
                    if self.slab.len() >= MAX_CLIENTS {
                        warn!("too many control clients, refusing one");
                        continue;
                    }
                    let entry = self.slab.vacant_entry();
                    let token = Token(CLIENT_BASE + entry.key());
                    if let Err(e) = poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("control client: {e}");
                        continue;
                    }
                    entry.insert(Client {
                        chan: Channel::new(stream),
                        replied: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the next readiness event retries; nothing else to do.
                    warn!("control accept: {e}");
                    break;
                }
            }
        }
    }

    /// Client `key` is readable or writable: its request, if one is complete (a bad one is
    /// answered here).
    pub(super) fn on_event(&mut self, poll: &Poll, key: usize) -> Option<CliRequest> {
        let c = self.slab.get_mut(key)?;
        c.chan.fill();
        c.chan.flush();
        if c.replied {
            return None;
        }
        match c.chan.next_msg::<CliRequest>() {
            Ok(r) => r,
            Err(e) => {
                let reason = e.to_string();
                self.reply(poll, key, CliReply::Error { reason });
                None
            }
        }
    }

    /// Close client `key` once it hung up or got its whole answer.
    pub(super) fn maybe_close(&mut self, poll: &Poll, key: usize) {
        let close = match self.slab.get(key) {
            Some(c) => c.chan.closed || (c.replied && c.chan.flushed()),
            None => false,
        };
        if close {
            let mut c = self.slab.remove(key);
            let _ = poll.registry().deregister(&mut c.chan.stream);
        }
    }

    /// Answer client `key` (it is closed once the answer is out).
    pub(super) fn reply(&mut self, poll: &Poll, key: usize, msg: CliReply) {
        if let Some(c) = self.slab.get_mut(key) {
            c.chan.send(&msg);
            c.replied = true;
        }
        self.maybe_close(poll, key);
    }
}
