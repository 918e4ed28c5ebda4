//! Worker processes: spawning (with their bus links to each other), the messages they send
//! on their control link, and reaping them when they exit.

use super::*;

impl Master {
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
        let inc = self.cluster_inc(
            self.start_micros
                .wrapping_mul(1000)
                .wrapping_add(self.generation),
        );
        while self.slot_listeners.len() <= worker_id {
            // A slot the start did not have (a reload with more workers).
            self.slot_listeners.push(Vec::new());
        }
        if self.slot_listeners[worker_id].is_empty() {
            // New, or given up while its worker was crash-looping (see `on_exit`).
            let l = bind_slot(&self.cfg).map_err(|e| io::Error::other(e.to_string()))?;
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

    /// Give the new worker `key` a bus link to every other live worker (one socketpair per
    /// pair, an end to each, passed over the control channels).
    pub(super) fn link_peers(&mut self, key: usize) {
        let others: Vec<usize> = self
            .procs
            .iter()
            .map(|(k, _)| k)
            .filter(|&k| k != key)
            .collect();
        for other in others {
            let (a, b) = match std::os::unix::net::UnixStream::pair() {
                Ok(p) => p,
                Err(e) => {
                    error!("socketpair for the bus: {e}");
                    continue;
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
        // A worker with links of its own is one more for the node's relay too.
        self.cluster_sync();
    }

    pub(super) fn spawn_into_slot(&mut self, slot: usize) -> io::Result<()> {
        let key = self.spawn_proc(slot)?;
        self.slots[slot].current = Some(key);
        self.slots[slot].respawn_at = None;
        Ok(())
    }

    pub(super) fn on_proc_event(&mut self, key: usize) {
        let Some(p) = self.procs.get_mut(key) else {
            return;
        };
        p.chan.fill();
        p.chan.flush();
        loop {
            let Some(p) = self.procs.get_mut(key) else {
                return;
            };
            match p.chan.next_msg::<WorkerMsg>() {
                Ok(Some(msg)) => self.on_worker_msg(key, msg),
                Ok(None) => break,
                Err(e) => {
                    // A worker speaking garbage is broken: it gets replaced like a crashed one.
                    error!("worker[{}:{}]: {e}; killing it", self.cfg.app, p.pid);
                    let _ = process::kill(p.pid, libc::SIGKILL);
                    p.state = ProcState::Killed;
                    p.chan.closed = true;
                    break;
                }
            }
        }
        if let Some(p) = self.procs.get_mut(key) {
            if p.chan.closed {
                // EOF: the worker is exiting; SIGCHLD will tell us when it is gone.
                let _ = self.poll.registry().deregister(&mut p.chan.stream);
            }
        }
    }

    pub(super) fn on_worker_msg(&mut self, key: usize, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Ready { pid, listeners } => {
                let Some(p) = self.procs.get_mut(key) else {
                    return;
                };
                if p.state != ProcState::Starting {
                    return;
                }
                p.state = ProcState::Running;
                p.listeners = listeners;
                let worker_id = p.worker_id;
                info!("{} ready (worker {worker_id})", self.label(pid as i32));
                self.on_ready(key);
            }
            WorkerMsg::Failed { reason } => {
                let Some(p) = self.procs.get_mut(key) else {
                    return;
                };
                let pid = p.pid;
                p.failed = Some(reason.clone());
                error!("{} failed to start: {reason}", self.label(pid));
            }
            WorkerMsg::Adopted { inc, conns } => {
                let pid = self.procs.get(key).map(|p| p.pid).unwrap_or(0);
                info!(
                    "{} took over {conns} connections (incarnation {inc:016x})",
                    self.label(pid)
                );
                self.handover_done(key, Some(inc));
            }
            WorkerMsg::HandOverFailed { reason } => {
                let pid = self.procs.get(key).map(|p| p.pid).unwrap_or(0);
                warn!("{} starts fresh: {reason}", self.label(pid));
                self.handover_done(key, None);
            }
            WorkerMsg::Status { req, status } => {
                let pid = self.procs.get(key).map(|p| p.pid).unwrap_or(0);
                if let Some(q) = self.queries.iter_mut().find(|q| q.req == req) {
                    if q.waiting.contains(&pid) {
                        q.waiting.retain(|&w| w != pid);
                        q.statuses.push(status);
                    }
                }
                self.finish_queries(Instant::now());
            }
            WorkerMsg::Connections { req, conns } => {
                let pid = self.procs.get(key).map(|p| p.pid).unwrap_or(0);
                if let Some(q) = self.queries.iter_mut().find(|q| q.req == req) {
                    if q.waiting.contains(&pid) {
                        q.waiting.retain(|&w| w != pid);
                        q.conns.extend(conns);
                    }
                }
                self.finish_queries(Instant::now());
            }
        }
    }

    /// A worker reported Ready: finish startup, or advance a reload.
    pub(super) fn on_ready(&mut self, key: usize) {
        if let Phase::Starting { .. } = self.phase {
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
            return;
        }
        let is_candidate = self
            .reload
            .as_ref()
            .and_then(|r| r.candidate.as_ref())
            .is_some_and(|c| c.key == key);
        if is_candidate {
            self.swap_candidate();
        }
    }

    pub(super) fn reap(&mut self) {
        loop {
            match process::reap_child() {
                Ok(Some((pid, status))) => self.on_exit(pid, status),
                Ok(None) => break,
                Err(e) => {
                    error!("waitpid: {e}");
                    break;
                }
            }
        }
    }

    pub(super) fn on_exit(&mut self, pid: i32, status: i32) {
        let Some(key) = self
            .procs
            .iter()
            .find(|(_, p)| p.pid == pid)
            .map(|(k, _)| k)
        else {
            return;
        };
        // The SIGCHLD may be handled before the worker's last messages in the same poll turn: read
        // what it wrote before dying (its `Failed` reason above all) before forgetting it. The pid
        // is reaped, so nothing here may signal it.
        if let Some(p) = self.procs.get_mut(key) {
            p.chan.fill();
        }
        loop {
            let Some(p) = self.procs.get_mut(key) else {
                return;
            };
            match p.chan.next_msg::<WorkerMsg>() {
                Ok(Some(msg)) => self.on_worker_msg(key, msg),
                Ok(None) | Err(_) => break,
            }
        }
        let mut p = self.procs.remove(key);
        let _ = self.poll.registry().deregister(&mut p.chan.stream);
        self.cluster_sync();
        *self.exits.entry(status).or_insert(0) += 1;
        let how = match ExitKind::from_raw(status) {
            ExitKind::Code(c) => format!("exit code {c}"),
            ExitKind::Signal(s) => format!("signal {}", process::signal_name(s)),
        };
        let expected = matches!(p.state, ProcState::Stopping { .. }) && status == 0;
        if expected {
            info!("{} exit with status {status} ({how})", self.label(pid));
        } else {
            warn!("{} exit with status {status} ({how})", self.label(pid));
        }
        for q in &mut self.queries {
            q.waiting.retain(|&w| w != pid);
        }
        self.finish_queries(Instant::now());

        let slot = p.worker_id;
        let was_current = self.slots.get(slot).and_then(|s| s.current) == Some(key);
        let reason = p
            .failed
            .take()
            .unwrap_or_else(|| format!("worker {slot} exited with status {status} ({how})"));
        if let Some(r) = &mut self.reload {
            r.retiring.retain(|&k| k != key);
            if r.candidate.as_ref().is_some_and(|c| c.key == key) {
                r.candidate = None;
                self.abort_reload(format!("new worker {slot} did not start: {reason}"));
            }
        }
        if was_current {
            self.slots[slot].current = None;
            match self.phase {
                Phase::Starting { .. } => self.fail_startup(reason),
                Phase::Running => {
                    let delay = self.slots[slot].backoff.on_exit(p.started.elapsed());
                    if !delay.is_zero() {
                        warn!(
                            "worker {slot} is crash-looping, respawn in {:.1}s",
                            delay.as_secs_f64()
                        );
                        // Nobody accepts on this slot's sockets until the respawn: close them
                        // so the kernel sends new connections to the live slots instead of
                        // queueing them here for seconds (what is queued now is reset, as it
                        // would be if the worker had owned them). Bound again at the respawn.
                        if let Some(l) = self.slot_listeners.get_mut(slot) {
                            l.clear();
                        }
                    }
                    self.slots[slot].respawn_at = Some(Instant::now() + delay);
                }
                Phase::Stopping { .. } => {}
            }
        }
        self.advance_reload();
    }
}
