//! Accepting connections: budgets per event, EMFILE back-off and the connection cap.

use super::*;

impl Worker {
    pub(super) fn accept(&mut self, i: usize) {
        let Some(l) = self.listeners.get_mut(i) else {
            return;
        };
        l.pending = false;
        for _ in 0..ACCEPT_BUDGET {
            if self.accept_paused {
                return;
            }
            if self.core.conns.len() >= self.core.limits.max_connections {
                // At the cap: leave the rest in the kernel backlog and look again shortly.
                self.pause_accept();
                return;
            }
            let Some(l) = self.listeners.get_mut(i) else {
                return;
            };
            match l.sock.accept() {
                Ok((stream, remote)) => {
                    let scheme = l.spec.scheme;
                    if self.peers.admit(remote.ip()) {
                        self.add_conn(stream, remote, scheme);
                    } else {
                        // Dropping the stream closes it: the address already holds its share.
                        if let Some(skipped) = self.quiet.allow(self.core.now) {
                            crate::warn!(
                                "refusing connections from {} over limits.max_connections_per_ip \
                                 ({skipped} more refusals since the last warning)",
                                remote.ip()
                            );
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => match e.raw_os_error() {
                    Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS)
                    | Some(libc::ENOMEM) => {
                        // Every 100 ms while the condition lasts: say it once per period.
                        if let Some(skipped) = self.quiet.allow(self.core.now) {
                            crate::warn!(
                                "accept: {e}; pausing accepts for {ACCEPT_BACKOFF:?} \
                                 ({skipped} more since the last warning)"
                            );
                        }
                        self.pause_accept();
                        return;
                    }
                    // ECONNABORTED and friends concern one connection only.
                    _ => {}
                },
            }
        }
        if let Some(l) = self.listeners.get_mut(i) {
            l.pending = true;
        }
    }

    pub(super) fn pause_accept(&mut self) {
        if !self.accept_paused {
            self.accept_paused = true;
            self.core
                .timers
                .schedule(self.core.now + ACCEPT_BACKOFF, Due::ResumeAccept);
        }
    }

    pub(super) fn add_conn(
        &mut self,
        mut stream: mio::net::TcpStream,
        remote: std::net::SocketAddr,
        scheme: crate::config::Scheme,
    ) {
        let _ = stream.set_nodelay(true);
        let gen = self.core.next_gen;
        self.core.next_gen = self.core.next_gen.wrapping_add(1);
        let entry = self.core.conns.vacant_entry();
        let slot = entry.key();
        if self
            .poll
            .registry()
            .register(
                &mut stream,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.peers.release(remote.ip());
            return;
        }
        // Already the tighter of the config's bound and the app's.
        let max_line = self.core.limits.max_package_size;
        entry.insert(Conn::new(
            gen,
            stream,
            scheme,
            remote,
            self.core.now,
            max_line,
        ));
        let id = ConnId {
            slot: slot as u32,
            gen,
        };
        let deadline = match scheme {
            crate::config::Scheme::Text => {
                let idle = self.core.limits.idle_timeout;
                (!idle.is_zero()).then(|| self.core.now + idle)
            }
            _ => {
                let d = self.core.now + self.core.limits.handshake_timeout;
                if let Some(c) = self.core.conns.get_mut(slot) {
                    c.deadline = Some(d);
                }
                Some(d)
            }
        };
        if let Some(d) = deadline {
            self.core.arm_conn_timer(slot, d);
        }
        if scheme == crate::config::Scheme::Text {
            input::connected(&mut self.core, self.app.as_mut(), id);
        }
    }
}
