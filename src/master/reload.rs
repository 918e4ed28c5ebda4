//! Reload: replace the workers one slot at a time, abort on a failed replacement, chain a
//! reload requested meanwhile.
//!
//! A fast reload hands connections over: the slot's successor is spawned with one end of a
//! socketpair and no bus links; once it is Ready the old worker gets the other end
//! (`HandOver`) and streams it its connections, links and registry replica; the successor
//! reports `Adopted` (it now speaks as the old incarnation) or `HandOverFailed` (it starts
//! fresh and gets bus links; the old worker closed its clients with 1012). Only then does the
//! next slot start. A graceful reload spawns the new worker, waits for Ready, and lets the
//! old one drain.

use super::stop::stop_proc;
use super::*;

/// Time a replacement worker gets to report Ready during a reload before the reload is aborted.
pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a successor gets, from its Ready, to report the outcome of its hand-over.
pub(super) const HANDOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The replacement of one slot being started.
#[derive(Debug)]
pub(super) struct Candidate {
    /// The slot.
    pub(super) slot: usize,
    /// Proc key of the new worker.
    pub(super) key: usize,
    /// When the current stage is given up.
    pub(super) deadline: Instant,
    /// Where it is.
    pub(super) stage: Stage,
}

/// Where a replacement is.
#[derive(Debug)]
pub(super) enum Stage {
    /// Spawned, not Ready; `handover` is the old worker's end of the hand-over socket.
    Starting {
        handover: Option<std::os::unix::net::UnixStream>,
    },
    /// Ready, the old worker told to hand over: waiting for `Adopted` or `HandOverFailed`.
    Adopting,
}

/// A reload in progress: slots still to replace, the replacement being started.
#[derive(Debug)]
pub(super) struct Reload {
    pub(super) graceful: bool,
    pub(super) queue: VecDeque<usize>,
    pub(super) candidate: Option<Candidate>,
    /// Old workers told to stop; a fast reload answers once they are gone.
    pub(super) retiring: Vec<usize>,
    /// CLI clients waiting for the outcome.
    pub(super) waiters: Vec<usize>,
    /// Another reload was requested meanwhile (it runs next, so it sees the latest binary/config).
    pub(super) again: Option<bool>,
}

impl Master {
    pub(super) fn begin_reload(
        &mut self,
        graceful: bool,
        client: Option<usize>,
    ) -> Result<(), String> {
        match self.phase {
            Phase::Starting { .. } => return Err("kefu is still starting".into()),
            Phase::Stopping { .. } => return Err("kefu is stopping".into()),
            Phase::Running => {}
        }
        if let Some(r) = &mut self.reload {
            // Finish the current pass, then start another so every slot runs the newest build.
            r.again = Some(graceful);
            r.waiters.extend(client);
            return Ok(());
        }
        self.check_reload_tls()?;
        info!(
            "reloading {} workers one at a time ({})",
            self.slots.len(),
            if graceful { "graceful" } else { "fast" }
        );
        self.reload = Some(Reload {
            graceful,
            queue: (0..self.slots.len()).collect(),
            candidate: None,
            retiring: Vec::new(),
            waiters: client.into_iter().collect(),
            again: None,
        });
        self.advance_reload();
        Ok(())
    }

    /// The new workers of a reload read the certificate files again (renewed ones included):
    /// check them first, so that a bad file refuses the reload, with its reason, and the
    /// running workers keep serving the certificates they loaded.
    fn check_reload_tls(&self) -> Result<(), String> {
        let listen = match &self.cfg.source {
            Some(path) => crate::config::Config::listen_of_file(path).map_err(|e| e.to_string())?,
            None => self.cfg.listen.clone(),
        };
        check_tls(&listen).map_err(|e| format!("{e}; the running workers keep their certificates"))
    }

    /// Start the next replacement, or finish the reload when every slot is done.
    pub(super) fn advance_reload(&mut self) {
        loop {
            let Some(r) = &mut self.reload else {
                return;
            };
            if r.candidate.is_some() {
                return;
            }
            let Some(slot) = r.queue.pop_front() else {
                break;
            };
            if self.slots[slot].current.is_none() {
                // Crashed and waiting for its respawn, which will exec the new binary anyway.
                continue;
            }
            let graceful = r.graceful;
            let spawned = if graceful {
                self.spawn_proc(slot).map(|k| (k, None))
            } else {
                self.spawn_successor(slot).map(|(k, h)| (k, Some(h)))
            };
            match spawned {
                Ok((key, handover)) => {
                    if let Some(r) = &mut self.reload {
                        r.candidate = Some(Candidate {
                            slot,
                            key,
                            deadline: Instant::now() + READY_TIMEOUT,
                            stage: Stage::Starting { handover },
                        });
                    }
                    return;
                }
                Err(e) => {
                    self.abort_reload(format!("cannot spawn worker {slot}: {e}"));
                    return;
                }
            }
        }
        // Queue empty, no candidate: done once fast-reloaded old workers are gone.
        let Some(r) = &self.reload else { return };
        if !r.graceful && !r.retiring.is_empty() {
            return;
        }
        let Some(r) = self.reload.take() else { return };
        let pids: Vec<u32> = self
            .slots
            .iter()
            .filter_map(|s| s.current.and_then(|k| self.procs.get(k)))
            .map(|p| p.pid as u32)
            .collect();
        if let Some(graceful) = r.again {
            // Waiters move to the follow-up reload.
            self.reload = None;
            let waiters = r.waiters;
            if self.begin_reload(graceful, None).is_ok() {
                if let Some(next) = &mut self.reload {
                    next.waiters = waiters;
                    return;
                }
            }
            for w in waiters {
                self.reply(
                    w,
                    CliReply::Done {
                        message: "reloaded".into(),
                        pids: pids.clone(),
                    },
                );
            }
            return;
        }
        info!("reload complete, workers: {pids:?}");
        for w in r.waiters {
            self.reply(
                w,
                CliReply::Done {
                    message: "reloaded".into(),
                    pids: pids.clone(),
                },
            );
        }
    }

    /// The candidate is Ready: it becomes the slot's worker and the old one is told to go
    /// (to drain, or to hand its connections over to it).
    pub(super) fn swap_candidate(&mut self) {
        let Some(r) = &mut self.reload else { return };
        let Some(c) = r.candidate.take() else {
            return;
        };
        let Stage::Starting { handover } = c.stage else {
            r.candidate = Some(c);
            return;
        };
        let graceful = r.graceful;
        let old = self.slots[c.slot].current.replace(c.key);
        let Some(old) = old.filter(|&o| self.procs.contains(o)) else {
            // Nobody to take over from: a fresh worker, linked like any other.
            if handover.is_some() {
                self.link_peers(c.key);
            }
            self.advance_reload();
            return;
        };
        r.retiring.push(old);
        match handover {
            None => {
                let msg = MasterMsg::Stop {
                    graceful,
                    restart: true,
                };
                let kill_at = if graceful {
                    self.kill_deadline(true)
                } else {
                    Some(Instant::now() + self.cfg.stop_timeout)
                };
                if let Some(p) = self.procs.get_mut(old) {
                    stop_proc(p, &msg, kill_at);
                }
                self.advance_reload();
            }
            Some(sock) => {
                // The old worker may first wait for its app to settle, then for the answers
                // it still owes: give it the hand-over time on top of the stop timeout.
                let kill_at = Some(Instant::now() + HANDOVER_TIMEOUT + self.cfg.stop_timeout);
                if let Some(p) = self.procs.get_mut(old) {
                    p.chan.send_with_fd(&MasterMsg::HandOver, sock.into());
                    if p.chan.closed {
                        let _ = process::kill(p.pid, libc::SIGTERM);
                    }
                    p.state = ProcState::Stopping { kill_at };
                }
                if let Some(r) = &mut self.reload {
                    r.candidate = Some(Candidate {
                        stage: Stage::Adopting,
                        deadline: Instant::now() + HANDOVER_TIMEOUT,
                        ..c
                    });
                }
            }
        }
    }

    /// The successor `key` reported the outcome of its hand-over: it took incarnation `inc`
    /// over, or (`None`) it starts fresh and needs bus links. The next slot goes next.
    pub(super) fn handover_done(&mut self, key: usize, inc: Option<u64>) {
        match inc {
            Some(inc) => {
                if let Some(p) = self.procs.get_mut(key) {
                    p.inc = inc;
                }
                // The relay already links this incarnation (the successor took its links over).
                self.cluster_sync();
            }
            None => self.link_peers(key),
        }
        let Some(r) = &mut self.reload else { return };
        if r.candidate
            .as_ref()
            .is_some_and(|c| c.key == key && matches!(c.stage, Stage::Adopting))
        {
            r.candidate = None;
            self.advance_reload();
        }
    }

    /// Give up on the reload: kill an unready candidate, keep the old workers, tell the waiters.
    pub(super) fn abort_reload(&mut self, reason: String) {
        let Some(r) = self.reload.take() else { return };
        error!("reload aborted: {reason}");
        if let Some(c) = r.candidate {
            if let Some(p) = self.procs.get_mut(c.key) {
                let _ = process::kill(p.pid, libc::SIGKILL);
                p.state = ProcState::Killed;
            }
        }
        for w in r.waiters {
            self.reply(
                w,
                CliReply::Error {
                    reason: format!(
                        "reload failed: {reason}; the remaining old workers keep running"
                    ),
                },
            );
        }
    }
}
