//! Reload ([`Reloads`]): replace the workers, abort on a failed replacement, chain a reload
//! requested meanwhile.
//!
//! A fast reload hands connections over, every slot at once: each slot's successor is
//! spawned with one end of a socketpair and no bus links; once a successor is Ready its old
//! worker gets the other end (`HandOver`) and streams it its connections, links and registry
//! replica; the successor reports `Adopted` (it now speaks as the old incarnation) or
//! `HandOverFailed` (it starts fresh; the old worker closed its clients with 1012). The slots
//! do not wait for each other: a bus link between two old workers is one socketpair, each
//! end of which moves with its worker, so the two successors end up linked by the same
//! sockets, whatever the order, and what was in flight on it is read once. A successor that
//! starts fresh gets new links only once no hand-over is under way (a link made to a worker
//! that is handing over would be lost; one made to an old worker about to hand over would
//! be handed to its successor, which would then hold two). The reload is done when every
//! old worker is gone. A graceful reload replaces one slot at a time: it spawns the new
//! worker, waits for Ready, and lets the old one drain.

use super::*;
use std::collections::VecDeque;

/// Time a replacement worker gets to report Ready during a reload before the reload is aborted.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a successor gets, from its Ready, to report the outcome of its hand-over.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The replacement of one slot being started.
#[derive(Debug)]
struct Candidate {
    /// The slot.
    slot: usize,
    /// Proc key of the new worker.
    key: usize,
    /// When the current stage is given up.
    deadline: Instant,
    /// Where it is.
    stage: Stage,
}

/// Where a replacement is.
#[derive(Debug)]
enum Stage {
    /// Spawned, not Ready; `handover` is the old worker's end of the hand-over socket.
    Starting {
        handover: Option<std::os::unix::net::UnixStream>,
    },
    /// Ready, the old worker told to hand over: waiting for `Adopted` or `HandOverFailed`.
    Adopting,
}

impl Stage {
    /// The successor is (or is about to be) taking a worker's incarnation over.
    fn hands_over(&self) -> bool {
        match self {
            Stage::Starting { handover } => handover.is_some(),
            Stage::Adopting => true,
        }
    }
}

/// Whether the reload still goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Replacing slots; `again`: another reload was asked for meanwhile (it runs next, so it
    /// sees the latest binary and config).
    Going { again: Option<bool> },
    /// Given up (the waiters were told why): only the hand-overs already under way finish.
    Aborted,
}

/// A reload in progress.
#[derive(Debug)]
struct Reload {
    graceful: bool,
    pass: Pass,
    /// Slots still to replace.
    queue: VecDeque<usize>,
    /// Replacements under way: one per slot at once for a fast reload, one for a graceful one.
    candidates: Vec<Candidate>,
    /// Successors that start fresh, to be linked once no hand-over is under way.
    fresh: Vec<usize>,
    /// Old workers told to stop; a fast reload answers once they are gone.
    retiring: Vec<usize>,
    /// CLI clients waiting for the outcome.
    waiters: Vec<usize>,
    /// When it began, for the log.
    began: Instant,
    /// The first `HandOver` sent and the last hand-over outcome received, for the log.
    handing: Option<(Instant, Instant)>,
}

/// The reload in progress, if any.
#[derive(Debug, Default)]
pub(super) struct Reloads {
    current: Option<Reload>,
}

impl Reloads {
    /// A reload is in progress (`kefu status` says "reloading").
    pub(super) fn active(&self) -> bool {
        self.current.is_some()
    }

    /// When the earliest replacement stage is given up.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let r = self.current.as_ref()?;
        r.candidates.iter().map(|c| c.deadline).min()
    }

    /// Start a reload (`client`, if any, waits for its outcome), or queue one after the
    /// reload in progress.
    pub(super) fn begin(
        &mut self,
        b: &mut Base,
        clients: &mut Clients,
        graceful: bool,
        client: Option<usize>,
    ) -> Result<(), String> {
        match b.phase {
            Phase::Starting { .. } => return Err("kefu is still starting".into()),
            Phase::Stopping { .. } => return Err("kefu is stopping".into()),
            Phase::Running => {}
        }
        if let Some(r) = &mut self.current {
            // Finish the current pass, then start another so every slot runs the newest build.
            r.pass = Pass::Going {
                again: Some(graceful),
            };
            r.waiters.extend(client);
            return Ok(());
        }
        check_reload_tls(b)?;
        info!(
            "reloading {} workers ({})",
            b.slots.len(),
            if graceful {
                "graceful, one at a time"
            } else {
                "fast, every slot at once"
            }
        );
        self.current = Some(Reload {
            graceful,
            pass: Pass::Going { again: None },
            queue: (0..b.slots.len()).collect(),
            candidates: Vec::new(),
            fresh: Vec::new(),
            retiring: Vec::new(),
            waiters: client.into_iter().collect(),
            began: Instant::now(),
            handing: None,
        });
        self.advance(b, clients);
        Ok(())
    }

    /// Start the next replacements, link the successors that start fresh once no hand-over
    /// runs, and finish the reload when every slot is done.
    pub(super) fn advance(&mut self, b: &mut Base, clients: &mut Clients) {
        self.step(b, clients);
        self.hold(b);
    }

    /// Keep the relay's view of this node's workers still while any slot hands over (see
    /// `Node::sync`); every change to the candidates ends here, through `advance`.
    fn hold(&self, b: &mut Base) {
        let held = self.current.as_ref().map_or_else(Vec::new, |r| {
            r.candidates
                .iter()
                .filter(|c| c.stage.hands_over())
                .map(|c| c.key)
                .collect()
        });
        b.node.hold(held, &b.procs);
    }

    fn step(&mut self, b: &mut Base, clients: &mut Clients) {
        loop {
            let Some(r) = &mut self.current else {
                return;
            };
            if r.graceful && !r.candidates.is_empty() {
                return;
            }
            let Some(slot) = r.queue.pop_front() else {
                break;
            };
            if b.slots[slot].current.is_none() {
                // Crashed and waiting for its respawn, which will exec the new binary anyway.
                continue;
            }
            let graceful = r.graceful;
            let spawned = if graceful {
                b.spawn_proc(slot).map(|k| (k, None))
            } else {
                b.spawn_successor(slot).map(|(k, h)| (k, Some(h)))
            };
            match spawned {
                Ok((key, handover)) => r.candidates.push(Candidate {
                    slot,
                    key,
                    deadline: Instant::now() + READY_TIMEOUT,
                    stage: Stage::Starting { handover },
                }),
                Err(e) => {
                    self.abort(b, clients, format!("cannot spawn worker {slot}: {e}"));
                    return;
                }
            }
        }
        let Some(r) = &mut self.current else { return };
        if !r.candidates.is_empty() {
            return;
        }
        if !r.fresh.is_empty() && b.phase == Phase::Running {
            b.link_fresh(&std::mem::take(&mut r.fresh));
        }
        // A fast reload is done once its old workers are gone.
        if !r.graceful && !r.retiring.is_empty() {
            return;
        }
        let Some(r) = self.current.take() else { return };
        let pids = b.current_pids();
        let reloaded = |b: &Base, clients: &mut Clients, waiters: Vec<usize>| {
            for w in waiters {
                let done = CliReply::Done {
                    message: "reloaded".into(),
                    pids: pids.clone(),
                };
                clients.reply(&b.poll, w, done);
            }
        };
        match r.pass {
            Pass::Aborted => info!("the hand-overs under way when the reload failed are done"),
            Pass::Going {
                again: Some(graceful),
            } => {
                // The waiters move to the follow-up reload.
                if self.begin(b, clients, graceful, None).is_ok() {
                    if let Some(next) = &mut self.current {
                        next.waiters = r.waiters;
                        return;
                    }
                }
                reloaded(b, clients, r.waiters);
            }
            Pass::Going { again: None } => {
                let ms = |d: Duration| d.as_millis();
                match r.handing {
                    Some((first, last)) => info!(
                        "reload complete in {} ms (connections handed over in {} ms), workers: {pids:?}",
                        ms(r.began.elapsed()),
                        ms(last.saturating_duration_since(first))
                    ),
                    None => info!(
                        "reload complete in {} ms, workers: {pids:?}",
                        ms(r.began.elapsed())
                    ),
                }
                reloaded(b, clients, r.waiters);
            }
        }
    }

    /// Worker `key` is Ready: if it is a replacement, it becomes its slot's worker and the old
    /// one is told to go (to drain, or to hand its connections over to it).
    pub(super) fn on_ready(&mut self, b: &mut Base, clients: &mut Clients, key: usize) {
        let Some(r) = &mut self.current else { return };
        let Some(i) = r
            .candidates
            .iter()
            .position(|c| c.key == key && matches!(c.stage, Stage::Starting { .. }))
        else {
            return;
        };
        let c = r.candidates.swap_remove(i);
        let Stage::Starting { handover } = c.stage else {
            return;
        };
        let slot = &mut b.slots[c.slot];
        let old = slot.current.replace(c.key);
        // An old worker that crashed meanwhile is replaced by this one, not respawned.
        slot.respawn_at = None;
        let Some(old) = old.filter(|&o| b.procs.contains(o)) else {
            // Nobody to take over from: a fresh worker, linked like any other.
            if handover.is_some() {
                r.fresh.push(c.key);
            }
            self.advance(b, clients);
            return;
        };
        r.retiring.push(old);
        match handover {
            None => {
                let msg = MasterMsg::Stop {
                    graceful: r.graceful,
                    restart: true,
                };
                let kill_at = if r.graceful {
                    stop::kill_deadline(b, true)
                } else {
                    Some(Instant::now() + b.cfg.stop_timeout)
                };
                if let Some(p) = b.procs.get_mut(old) {
                    p.stop(&msg, kill_at);
                }
                self.advance(b, clients);
            }
            Some(sock) => {
                // The old worker may first wait for its app to settle, then for the answers
                // it still owes: give it the hand-over time on top of the stop timeout.
                let kill_at = Some(Instant::now() + HANDOVER_TIMEOUT + b.cfg.stop_timeout);
                if let Some(p) = b.procs.get_mut(old) {
                    p.chan.send_with_fd(&MasterMsg::HandOver, sock.into());
                    if p.chan.closed {
                        let _ = process::kill(p.pid, libc::SIGTERM);
                    }
                    p.state = ProcState::Stopping { kill_at };
                }
                let now = Instant::now();
                r.handing.get_or_insert((now, now));
                r.candidates.push(Candidate {
                    stage: Stage::Adopting,
                    deadline: Instant::now() + HANDOVER_TIMEOUT,
                    ..c
                });
            }
        }
    }

    /// The successor `key` reported the outcome of its hand-over: it took incarnation `inc`
    /// over, or (`None`) it starts fresh and needs bus links.
    pub(super) fn handover_done(
        &mut self,
        b: &mut Base,
        clients: &mut Clients,
        key: usize,
        inc: Option<u64>,
    ) {
        if let (Some(inc), Some(p)) = (inc, b.procs.get_mut(key)) {
            p.inc = inc;
        }
        // The candidate goes before any report, so that this successor is no longer held:
        // the relay learns the workers now (the incarnation taken over is the one it links
        // already) or, while another slot still hands over, once the last one is done.
        if let Some(r) = &mut self.current {
            if let Some((_, last)) = &mut r.handing {
                *last = Instant::now();
            }
            r.candidates
                .retain(|c| !(c.key == key && matches!(c.stage, Stage::Adopting)));
        }
        self.hold(b);
        match (inc, &mut self.current) {
            (Some(_), _) => b.node.sync(&b.procs),
            (None, Some(r)) => r.fresh.push(key),
            (None, None) => b.link_fresh(&[key]),
        }
        self.advance(b, clients);
    }

    /// Worker `key` is gone: a retiring one is done; a replacement that dies fails the reload.
    pub(super) fn on_exit(
        &mut self,
        b: &mut Base,
        clients: &mut Clients,
        key: usize,
        gone: &procs::Exited,
    ) {
        let Some(r) = &mut self.current else { return };
        r.retiring.retain(|&k| k != key);
        r.fresh.retain(|&k| k != key);
        let before = r.candidates.len();
        r.candidates.retain(|c| c.key != key);
        if r.candidates.len() != before {
            let why = format!("new worker {} did not start: {}", gone.slot, gone.reason);
            self.abort(b, clients, why);
        }
    }

    /// Give up on a replacement past its deadline: it is killed and the reload fails.
    pub(super) fn on_timers(&mut self, b: &mut Base, clients: &mut Clients, now: Instant) {
        let Some(r) = &mut self.current else { return };
        let Some(i) = r.candidates.iter().position(|c| now >= c.deadline) else {
            return;
        };
        let c = r.candidates.swap_remove(i);
        if let Some(p) = b.procs.get_mut(c.key) {
            p.kill();
        }
        let why = match c.stage {
            Stage::Adopting => format!(
                "new worker {} did not take the connections over within {}s",
                c.slot,
                HANDOVER_TIMEOUT.as_secs()
            ),
            Stage::Starting { .. } => format!(
                "new worker {} not ready within {}s",
                c.slot,
                READY_TIMEOUT.as_secs()
            ),
        };
        self.abort(b, clients, why);
    }

    /// Give up on the reload: kill the replacements not yet Ready (their old workers keep
    /// running), let the hand-overs under way finish, tell the waiters.
    pub(super) fn abort(&mut self, b: &mut Base, clients: &mut Clients, reason: String) {
        let Some(r) = &mut self.current else { return };
        if r.pass != Pass::Aborted {
            error!("reload aborted: {reason}");
        }
        r.pass = Pass::Aborted;
        r.queue.clear();
        r.candidates.retain(|c| match c.stage {
            Stage::Starting { .. } => {
                if let Some(p) = b.procs.get_mut(c.key) {
                    p.kill();
                }
                false
            }
            Stage::Adopting => true,
        });
        for w in std::mem::take(&mut r.waiters) {
            let reason = format!("reload failed: {reason}; the remaining old workers keep running");
            clients.reply(&b.poll, w, CliReply::Error { reason });
        }
        self.advance(b, clients);
    }
}

/// The new workers of a reload read the certificate files again (renewed ones included):
/// check them first, so that a bad file refuses the reload, with its reason, and the
/// running workers keep serving the certificates they loaded.
fn check_reload_tls(b: &Base) -> Result<(), String> {
    let listen = match &b.cfg.source {
        Some(path) => crate::config::Config::listen_of_file(path).map_err(|e| e.to_string())?,
        None => b.cfg.listen.clone(),
    };
    listen::check_tls(&listen)
        .map_err(|e| format!("{e}; the running workers keep their certificates"))
}
