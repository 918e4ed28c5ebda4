//! Stopping: fast (stop timeout, then SIGKILL) or graceful (drain), escalation on a second
//! request, and failed startups.

use super::*;

impl Master {
    pub(super) fn fail_startup(&mut self, reason: String) {
        error!("start failed: {reason}");
        self.notify.report(&StartReport::Failed {
            reason: reason.clone(),
        });
        self.enter_stop(false, 1);
    }

    pub(super) fn begin_stop(&mut self, graceful: bool) {
        match self.phase {
            Phase::Stopping {
                graceful: false, ..
            } if !graceful => {
                // Second fast stop (e.g. Ctrl-C twice): do not wait any longer.
                warn!("second stop request: killing all workers now");
                self.kill_all();
            }
            Phase::Stopping { graceful: true, .. } if !graceful => {
                info!("fast stop requested during a graceful stop");
                self.enter_stop(false, 0);
            }
            Phase::Stopping { .. } => {}
            Phase::Starting { .. } => {
                self.notify.report(&StartReport::Failed {
                    reason: "stopped during startup".into(),
                });
                self.enter_stop(graceful, 1);
            }
            Phase::Running => self.enter_stop(graceful, 0),
        }
    }

    /// Tell every worker to stop and arm the SIGKILL deadline.
    pub(super) fn enter_stop(&mut self, graceful: bool, exit_code: i32) {
        let exit_code = match self.phase {
            Phase::Stopping { exit_code: c, .. } => c.max(exit_code),
            _ => exit_code,
        };
        self.phase = Phase::Stopping {
            graceful,
            exit_code,
        };
        info!(
            "stopping {} workers ({})",
            self.procs.len(),
            if graceful { "graceful" } else { "fast" }
        );
        if self.reload.is_some() {
            self.abort_reload("the server is stopping".into());
        }
        for s in &mut self.slots {
            s.respawn_at = None;
        }
        let kill_at = self.kill_deadline(graceful);
        let msg = MasterMsg::Stop {
            graceful,
            restart: false,
        };
        for (_, p) in self.procs.iter_mut() {
            if p.state == ProcState::Killed {
                continue;
            }
            stop_proc(p, &msg, kill_at);
        }
    }

    pub(super) fn kill_deadline(&self, graceful: bool) -> Option<Instant> {
        let now = Instant::now();
        if !graceful {
            Some(now + self.cfg.stop_timeout)
        } else if !self.cfg.graceful_timeout.is_zero() {
            // The worker enforces graceful_timeout itself; this is the backstop.
            Some(now + self.cfg.graceful_timeout + self.cfg.stop_timeout)
        } else {
            None
        }
    }

    pub(super) fn kill_all(&mut self) {
        for (_, p) in self.procs.iter_mut() {
            let _ = process::kill(p.pid, libc::SIGKILL);
            p.state = ProcState::Killed;
        }
    }
}

/// Send Stop, or signal if the link is gone, and arm the kill deadline.
pub(super) fn stop_proc(p: &mut Proc, msg: &MasterMsg, kill_at: Option<Instant>) {
    p.chan.send(msg);
    if p.chan.closed {
        // No link left to ask politely: the signal is the fallback.
        let _ = process::kill(p.pid, libc::SIGTERM);
    }
    p.state = ProcState::Stopping { kill_at };
}
