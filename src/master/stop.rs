//! Stopping, as functions over the base: fast (stop timeout, then SIGKILL) or graceful
//! (drain), escalation on a second request, and the SIGKILL of a worker that is stuck.

use super::*;

/// A stop was asked for: what to enter, if anything (`(graceful, exit code)`). A second fast
/// stop kills every worker at once; one during startup fails the start.
pub(super) fn request(b: &mut Base, graceful: bool) -> Option<(bool, i32)> {
    match b.phase {
        Phase::Stopping {
            graceful: false, ..
        } if !graceful => {
            // Second fast stop (e.g. Ctrl-C twice): do not wait any longer.
            warn!("second stop request: killing all workers now");
            kill_all(b);
            None
        }
        Phase::Stopping { graceful: true, .. } if !graceful => {
            info!("fast stop requested during a graceful stop");
            Some((false, 0))
        }
        Phase::Stopping { .. } => None,
        Phase::Starting { .. } => {
            b.notify.report(&StartReport::Failed {
                reason: "stopped during startup".into(),
            });
            Some((graceful, 1))
        }
        Phase::Running => Some((graceful, 0)),
    }
}

/// Tell every worker to stop and arm the SIGKILL deadline.
pub(super) fn enter(b: &mut Base, graceful: bool, exit_code: i32) {
    let exit_code = match b.phase {
        Phase::Stopping { exit_code: c, .. } => c.max(exit_code),
        _ => exit_code,
    };
    b.phase = Phase::Stopping {
        graceful,
        exit_code,
    };
    info!(
        "stopping {} workers ({})",
        b.procs.len(),
        if graceful { "graceful" } else { "fast" }
    );
    for s in &mut b.slots {
        s.respawn_at = None;
    }
    let kill_at = kill_deadline(b, graceful);
    let msg = MasterMsg::Stop {
        graceful,
        restart: false,
    };
    for (_, p) in b.procs.iter_mut() {
        if p.state == ProcState::Killed {
            continue;
        }
        p.stop(&msg, kill_at);
    }
}

/// When a worker told to stop now is killed if still there.
pub(super) fn kill_deadline(b: &Base, graceful: bool) -> Option<Instant> {
    let now = Instant::now();
    if !graceful {
        Some(now + b.cfg.stop_timeout)
    } else if !b.cfg.graceful_timeout.is_zero() {
        // The worker enforces graceful_timeout itself; this is the backstop.
        Some(now + b.cfg.graceful_timeout + b.cfg.stop_timeout)
    } else {
        None
    }
}

pub(super) fn kill_all(b: &mut Base) {
    for (_, p) in b.procs.iter_mut() {
        p.kill();
    }
}

/// SIGKILL the workers still alive past their stop deadline.
pub(super) fn kill_late(b: &mut Base, now: Instant) {
    for (_, p) in b.procs.iter_mut() {
        if let ProcState::Stopping { kill_at: Some(t) } = p.state {
            if now >= t {
                // Idle connections never hold a worker up (it closes them at once), so a
                // worker still here is stuck: in app code, or on a client that will not
                // take its last bytes.
                warn!(
                    "worker[{}:{}] is stuck: still alive after stop_timeout; SIGKILL",
                    b.cfg.app, p.pid
                );
                p.kill();
            }
        }
    }
}
