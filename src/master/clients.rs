//! CLI clients on the control socket: accept them, read one request, answer it, close.

use super::query::QueryKind;
use super::*;

/// More simultaneous CLI clients than this are refused (they are admins, not traffic).
const MAX_CLIENTS: usize = 256;

/// A connected CLI client.
#[derive(Debug)]
pub(super) struct Client {
    pub(super) chan: Channel,
    /// A reply was queued: close once it is flushed.
    pub(super) replied: bool,
}

impl Master {
    pub(super) fn accept_clients(&mut self) {
        loop {
            match self.control.accept() {
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
                    if self.clients.len() >= MAX_CLIENTS {
                        warn!("too many control clients, refusing one");
                        continue;
                    }
                    let entry = self.clients.vacant_entry();
                    let token = Token(CLIENT_BASE + entry.key());
                    if let Err(e) = self.poll.registry().register(
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

    pub(super) fn on_client_event(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        c.chan.fill();
        c.chan.flush();
        let req = if c.replied {
            None
        } else {
            match c.chan.next_msg::<CliRequest>() {
                Ok(r) => r,
                Err(e) => {
                    self.reply(
                        key,
                        CliReply::Error {
                            reason: e.to_string(),
                        },
                    );
                    return;
                }
            }
        };
        if let Some(req) = req {
            self.on_request(key, req);
        }
        self.maybe_close_client(key);
    }

    pub(super) fn maybe_close_client(&mut self, key: usize) {
        let close = match self.clients.get(key) {
            Some(c) => c.chan.closed || (c.replied && c.chan.flushed()),
            None => false,
        };
        if close {
            let mut c = self.clients.remove(key);
            let _ = self.poll.registry().deregister(&mut c.chan.stream);
        }
    }

    pub(super) fn reply(&mut self, key: usize, msg: CliReply) {
        if let Some(c) = self.clients.get_mut(key) {
            c.chan.send(&msg);
            c.replied = true;
        }
        self.maybe_close_client(key);
    }

    pub(super) fn on_request(&mut self, key: usize, req: CliRequest) {
        match req {
            CliRequest::Status => self.begin_query(key, QueryKind::Status),
            CliRequest::Connections => self.begin_query(key, QueryKind::Connections),
            CliRequest::Stop { graceful } => {
                info!("stop requested from the CLI (graceful: {graceful})");
                self.reply(
                    key,
                    CliReply::Done {
                        message: "stopping".into(),
                        pids: Vec::new(),
                    },
                );
                self.begin_stop(graceful);
            }
            CliRequest::Admin { event } => {
                info!("admin change from the CLI: {event:?}");
                let msg = MasterMsg::Admin { event };
                let mut told = 0;
                for (_, p) in self.procs.iter_mut() {
                    if p.chan.closed {
                        continue;
                    }
                    p.chan.send(&msg);
                    told += usize::from(!p.chan.closed);
                }
                self.reply(
                    key,
                    CliReply::Done {
                        message: format!("told {told} workers"),
                        pids: Vec::new(),
                    },
                );
            }
            CliRequest::Reload { graceful } => {
                info!("reload requested from the CLI (graceful: {graceful})");
                if let Err(reason) = self.begin_reload(graceful, Some(key)) {
                    self.reply(key, CliReply::Error { reason });
                }
            }
        }
    }
}
