//! The base's methods: the worker processes (spawning them with their bus links to each
//! other, reading what they send on their control link, forgetting them when they exit) and
//! the slots they serve.

use super::*;
use crate::sys::process::ExitKind;

/// Send buffer asked for on each end of a hand-over socket (capped by `net.core.wmem_max`).
const HANDOVER_SOCKET_BUFFER: usize = 4 << 20;

/// What is left to do about a worker that exited (see [`Base::remove_exited`]).
#[derive(Debug)]
pub(super) struct Exited {
    /// Its slot.
    pub(super) slot: usize,
    /// It was the slot's current worker (not a retiring one or a candidate).
    pub(super) was_current: bool,
    /// Why it is gone: its own `Failed` reason, or its exit status.
    pub(super) reason: String,
    /// How long it ran.
    pub(super) lived: Duration,
}

impl Proc {
    /// Send Stop, or signal if the link is gone, and arm the kill deadline.
    pub(super) fn stop(&mut self, msg: &MasterMsg, kill_at: Option<Instant>) {
        self.chan.send(msg);
        if self.chan.closed {
            // No link left to ask politely: the signal is the fallback.
            let _ = process::kill(self.pid, libc::SIGTERM);
        }
        self.state = ProcState::Stopping { kill_at };
    }

    /// SIGKILL it; the reap follows.
    pub(super) fn kill(&mut self) {
        let _ = process::kill(self.pid, libc::SIGKILL);
        self.state = ProcState::Killed;
    }

    /// Still serving or about to: neither told to stop nor killed.
    pub(super) fn live(&self) -> bool {
        matches!(self.state, ProcState::Starting | ProcState::Running)
    }
}

impl Base {
    pub(super) fn listen_list(&self) -> Vec<String> {
        self.cfg.listen.iter().map(|l| l.to_string()).collect()
    }

    pub(super) fn label(&self, pid: i32) -> String {
        format!("worker[{}:{pid}]", self.cfg.app)
    }

    /// The log label of worker `key` (pid 0 if it is gone).
    pub(super) fn label_key(&self, key: usize) -> String {
        self.label(self.pid_of(key))
    }

    pub(super) fn pid_of(&self, key: usize) -> i32 {
        self.procs.get(key).map(|p| p.pid).unwrap_or(0)
    }

    pub(super) fn key_of_pid(&self, pid: i32) -> Option<usize> {
        self.procs
            .iter()
            .find(|(_, p)| p.pid == pid)
            .map(|(k, _)| k)
    }

    /// The slots' current workers' pids, in slot order.
    pub(super) fn current_pids(&self) -> Vec<u32> {
        self.slots
            .iter()
            .filter_map(|s| s.current.and_then(|k| self.procs.get(k)))
            .map(|p| p.pid as u32)
            .collect()
    }

    /// Send `msg` to every worker with a link; returns how many got it.
    pub(super) fn tell_all(&mut self, msg: &MasterMsg) -> usize {
        let mut told = 0;
        for (_, p) in self.procs.iter_mut() {
            if p.chan.closed {
                continue;
            }
            p.chan.send(msg);
            told += usize::from(!p.chan.closed);
        }
        told
    }

    /// Spawn a worker for `worker_id` and link it to every other worker.
    pub(super) fn spawn_proc(&mut self, worker_id: usize) -> io::Result<usize> {
        let key = self.spawn_worker(worker_id, None)?;
        self.link_peers(key);
        Ok(key)
    }

    /// Spawn the successor of slot `worker_id`'s worker for a hand-over: it gets one end of
    /// a fresh socketpair (the other is returned, for the old worker once the new one is
    /// Ready) and no bus links, since it takes over its predecessor's.
    pub(super) fn spawn_successor(
        &mut self,
        worker_id: usize,
    ) -> io::Result<(usize, std::os::unix::net::UnixStream)> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        for end in [&ours, &theirs] {
            // Megabytes of records cross this socket: with the default ~200 KiB in flight the
            // two workers would wake each other ~50 times per 10k connections, and on a busy
            // machine each wake-up waits for a CPU. Best effort: the default works, slower.
            let _ = crate::sys::socket::set_send_buffer(end, HANDOVER_SOCKET_BUFFER);
        }
        let key = self.spawn_worker(worker_id, Some(&theirs))?;
        Ok((key, ours))
    }

    fn spawn_worker(
        &mut self,
        worker_id: usize,
        handover: Option<&std::os::unix::net::UnixStream>,
    ) -> io::Result<usize> {
        self.generation += 1;
        // A later master starts at a later microsecond and no master spawns 1000 workers per
        // microsecond of its life, so incarnations never repeat across restarts.
        let inc = self.node.inc(
            &self.cfg,
            self.start_micros
                .wrapping_mul(1000)
                .wrapping_add(self.generation),
        );
        while self.slot_listeners.len() <= worker_id {
            // A slot the start did not have (a reload with more workers).
            self.slot_listeners.push(Vec::new());
        }
        if self.slot_listeners[worker_id].is_empty() {
            // New, or given up while its worker was crash-looping (see `vacate`).
            let l = listen::bind_slot(&self.cfg).map_err(|e| io::Error::other(e.to_string()))?;
            self.slot_listeners[worker_id] = l;
        }
        let s = self
            .spawn
            .spawn(worker_id, inc, &self.slot_listeners[worker_id], handover)?;
        let mut stream = mio::net::UnixStream::from_std(s.control);
        let entry = self.procs.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut stream,
            Token(PROC_BASE + key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Proc {
            worker_id,
            inc,
            pid: s.pid,
            started: Instant::now(),
            state: ProcState::Starting,
            chan: Channel::new(stream),
            listeners: Vec::new(),
            failed: None,
        });
        Ok(key)
    }

    /// Give the new worker `key` a bus link to every other worker (one socketpair per pair,
    /// an end to each, passed over the control channels).
    pub(super) fn link_peers(&mut self, key: usize) {
        let others: Vec<usize> = self
            .procs
            .iter()
            .map(|(k, _)| k)
            .filter(|&k| k != key)
            .collect();
        for other in others {
            self.link_pair(key, other);
        }
        // A worker with links of its own is one more for the node's relay too.
        self.node.sync(&self.procs);
    }

    /// Link the workers `new` (successors of a reload that start fresh) to every live worker
    /// and to each other, once per pair. Workers told to stop are left out: those of the
    /// reload handed their links over already.
    pub(super) fn link_fresh(&mut self, new: &[usize]) {
        for (i, &key) in new.iter().enumerate() {
            let others: Vec<usize> = self
                .procs
                .iter()
                .filter(|&(k, p)| k != key && p.live() && !new[..i].contains(&k))
                .map(|(k, _)| k)
                .collect();
            for other in others {
                self.link_pair(key, other);
            }
        }
        self.node.sync(&self.procs);
    }

    fn link_pair(&mut self, key: usize, other: usize) {
        if !self.procs.contains(key) || !self.procs.contains(other) {
            return;
        }
        let (a, b) = match std::os::unix::net::UnixStream::pair() {
            Ok(p) => p,
            Err(e) => {
                error!("socketpair for the bus: {e}");
                return;
            }
        };
        let (new_inc, new_id) = (self.procs[key].inc, self.procs[key].worker_id);
        let (old_inc, old_id) = (self.procs[other].inc, self.procs[other].worker_id);
        self.procs[other].chan.send_with_fd(
            &MasterMsg::Peer {
                inc: new_inc,
                worker_id: new_id,
            },
            a.into(),
        );
        self.procs[key].chan.send_with_fd(
            &MasterMsg::Peer {
                inc: old_inc,
                worker_id: old_id,
            },
            b.into(),
        );
    }

    pub(super) fn spawn_into_slot(&mut self, slot: usize) -> io::Result<()> {
        let key = self.spawn_proc(slot)?;
        self.slots[slot].current = Some(key);
        self.slots[slot].respawn_at = None;
        Ok(())
    }

    /// Respawn the slots whose back-off is over.
    pub(super) fn respawn_due(&mut self, now: Instant) {
        for slot in 0..self.slots.len() {
            if self.slots[slot].respawn_at.is_some_and(|t| now >= t) {
                if let Err(e) = self.spawn_into_slot(slot) {
                    error!("cannot respawn worker {slot}: {e}");
                    let delay = self.slots[slot].backoff.on_exit(Duration::ZERO);
                    self.slots[slot].respawn_at = Some(now + delay);
                }
            }
        }
    }

    /// Read what worker `key` sent and write what is queued for it.
    pub(super) fn fill(&mut self, key: usize) {
        if let Some(p) = self.procs.get_mut(key) {
            p.chan.fill();
            p.chan.flush();
        }
    }

    /// The next message of worker `key`. A worker speaking garbage is broken: it is killed
    /// and replaced like a crashed one.
    pub(super) fn next_msg(&mut self, key: usize) -> Option<WorkerMsg> {
        let p = self.procs.get_mut(key)?;
        match p.chan.next_msg::<WorkerMsg>() {
            Ok(m) => m,
            Err(e) => {
                error!("worker[{}:{}]: {e}; killing it", self.cfg.app, p.pid);
                p.kill();
                p.chan.closed = true;
                None
            }
        }
    }

    /// At EOF the worker is exiting (SIGCHLD will tell when it is gone): stop polling its link.
    pub(super) fn forget_closed_link(&mut self, key: usize) {
        if let Some(p) = self.procs.get_mut(key) {
            if p.chan.closed {
                let _ = self.poll.registry().deregister(&mut p.chan.stream);
            }
        }
    }

    /// Read the last bytes of a reaped worker (nothing is written to it any more).
    pub(super) fn fill_reaped(&mut self, key: usize) {
        if let Some(p) = self.procs.get_mut(key) {
            p.chan.fill();
        }
    }

    /// The next message of a reaped worker; garbage ends the reading (it cannot be killed).
    pub(super) fn next_msg_reaped(&mut self, key: usize) -> Option<WorkerMsg> {
        self.procs
            .get_mut(key)?
            .chan
            .next_msg::<WorkerMsg>()
            .ok()
            .flatten()
    }

    /// Worker `key` reported Ready; false if that changes nothing (not Starting).
    pub(super) fn mark_ready(&mut self, key: usize, pid: u32, listeners: Vec<String>) -> bool {
        let Some(p) = self.procs.get_mut(key) else {
            return false;
        };
        if p.state != ProcState::Starting {
            return false;
        }
        p.state = ProcState::Running;
        p.listeners = listeners;
        let worker_id = p.worker_id;
        info!("{} ready (worker {worker_id})", self.label(pid as i32));
        true
    }

    /// Worker `key` could not start: keep its reason for when it exits.
    pub(super) fn mark_failed(&mut self, key: usize, reason: String) {
        let Some(p) = self.procs.get_mut(key) else {
            return;
        };
        let pid = p.pid;
        p.failed = Some(reason.clone());
        error!("{} failed to start: {reason}", self.label(pid));
    }

    /// At startup: once every slot's worker is Ready, the master runs and `kefu start` is told.
    pub(super) fn maybe_started(&mut self) {
        let all = self.slots.iter().all(|s| {
            s.current
                .and_then(|k| self.procs.get(k))
                .is_some_and(|p| p.state == ProcState::Running)
        });
        if all {
            self.phase = Phase::Running;
            let report = StartReport::Ready {
                master_pid: std::process::id(),
                app: self.cfg.app.clone(),
                workers: self.slots.len(),
                listeners: self.listen_list(),
            };
            info!("all {} workers ready", self.slots.len());
            self.notify.report(&report);
        }
    }

    /// Forget the reaped worker `key`: count and log its exit, free its slot.
    pub(super) fn remove_exited(&mut self, key: usize, status: i32) -> Exited {
        let mut p = self.procs.remove(key);
        let _ = self.poll.registry().deregister(&mut p.chan.stream);
        self.node.sync(&self.procs);
        *self.exits.entry(status).or_insert(0) += 1;
        let how = match ExitKind::from_raw(status) {
            ExitKind::Code(c) => format!("exit code {c}"),
            ExitKind::Signal(s) => format!("signal {}", process::signal_name(s)),
        };
        let expected = matches!(p.state, ProcState::Stopping { .. }) && status == 0;
        if expected {
            info!("{} exit with status {status} ({how})", self.label(p.pid));
        } else {
            warn!("{} exit with status {status} ({how})", self.label(p.pid));
        }
        let slot = p.worker_id;
        let was_current = self.slots.get(slot).and_then(|s| s.current) == Some(key);
        if was_current {
            self.slots[slot].current = None;
        }
        let reason = p
            .failed
            .take()
            .unwrap_or_else(|| format!("worker {slot} exited with status {status} ({how})"));
        Exited {
            slot,
            was_current,
            reason,
            lived: p.started.elapsed(),
        }
    }

    /// The current worker of `slot` died while running: respawn it after its back-off.
    pub(super) fn vacate(&mut self, slot: usize, lived: Duration) {
        if self.phase != Phase::Running {
            return;
        }
        let delay = self.slots[slot].backoff.on_exit(lived);
        if !delay.is_zero() {
            warn!(
                "worker {slot} is crash-looping, respawn in {:.1}s",
                delay.as_secs_f64()
            );
            // Nobody accepts on this slot's sockets until the respawn: close them so the
            // kernel sends new connections to the live slots instead of queueing them here
            // for seconds (what is queued now is reset, as it would be if the worker had owned
            // them). Bound again at the respawn.
            if let Some(l) = self.slot_listeners.get_mut(slot) {
                l.clear();
            }
        }
        self.slots[slot].respawn_at = Some(Instant::now() + delay);
    }
}
