//! Status and connections queries ([`Queries`]): fanned out to every worker, answered when
//! all replied or after [`QUERY_TIMEOUT`] (silent workers are shown as busy).

use super::*;
use crate::ipc::{ConnInfo, ExitStat, MasterStatus, WorkerStatus};

/// Time workers get to answer a status/connections query; silent ones are shown as busy.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QueryKind {
    Status,
    Connections,
}

/// A status/connections request fanned out to the workers.
#[derive(Debug)]
struct Query {
    req: u64,
    kind: QueryKind,
    client: usize,
    waiting: Vec<i32>,
    statuses: Vec<WorkerStatus>,
    conns: Vec<ConnInfo>,
    deadline: Instant,
}

/// The queries waiting for workers' answers.
#[derive(Debug)]
pub(super) struct Queries {
    list: Vec<Query>,
    next_req: u64,
    /// When the master started (seconds since the epoch), for `kefu status`.
    start_time: u64,
}

impl Queries {
    pub(super) fn new(start_time: u64) -> Queries {
        Queries {
            list: Vec::new(),
            next_req: 1,
            start_time,
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.list.iter().map(|q| q.deadline).min()
    }

    /// Ask every worker; `client` gets the answer (`reloading` shows in the status).
    pub(super) fn begin(
        &mut self,
        b: &mut Base,
        clients: &mut Clients,
        reloading: bool,
        client: usize,
        kind: QueryKind,
    ) {
        let req = self.next_req;
        self.next_req += 1;
        let msg = match kind {
            QueryKind::Status => MasterMsg::Status { req },
            QueryKind::Connections => MasterMsg::Connections { req },
        };
        let mut waiting = Vec::new();
        for (_, p) in b.procs.iter_mut() {
            if p.chan.closed {
                continue;
            }
            p.chan.send(&msg);
            if !p.chan.closed {
                waiting.push(p.pid);
            }
        }
        self.list.push(Query {
            req,
            kind,
            client,
            waiting,
            statuses: Vec::new(),
            conns: Vec::new(),
            deadline: Instant::now() + QUERY_TIMEOUT,
        });
        self.finish(b, clients, reloading, Instant::now());
    }

    /// Worker `pid` answered status query `req`.
    pub(super) fn status(&mut self, req: u64, pid: i32, status: WorkerStatus) {
        if let Some(q) = self.answered(req, pid) {
            q.statuses.push(status);
        }
    }

    /// Worker `pid` answered connections query `req`.
    pub(super) fn connections(&mut self, req: u64, pid: i32, conns: Vec<ConnInfo>) {
        if let Some(q) = self.answered(req, pid) {
            q.conns.extend(conns);
        }
    }

    /// The query `req` if it was waiting for `pid`, which it no longer does.
    fn answered(&mut self, req: u64, pid: i32) -> Option<&mut Query> {
        let q = self.list.iter_mut().find(|q| q.req == req)?;
        if !q.waiting.contains(&pid) {
            return None;
        }
        q.waiting.retain(|&w| w != pid);
        Some(q)
    }

    /// Worker `pid` is gone: no query waits for it any more.
    pub(super) fn forget(&mut self, pid: i32) {
        for q in &mut self.list {
            q.waiting.retain(|&w| w != pid);
        }
    }

    /// Answer every query that is complete or past its deadline.
    pub(super) fn finish(
        &mut self,
        b: &Base,
        clients: &mut Clients,
        reloading: bool,
        now: Instant,
    ) {
        let mut i = 0;
        while i < self.list.len() {
            let q = &self.list[i];
            if !q.waiting.is_empty() && q.deadline > now {
                i += 1;
                continue;
            }
            let q = self.list.swap_remove(i);
            let reply = match q.kind {
                QueryKind::Status => CliReply::Status {
                    status: self.master_status(b, reloading, q.statuses),
                },
                QueryKind::Connections => CliReply::Connections { conns: q.conns },
            };
            clients.reply(&b.poll, q.client, reply);
        }
    }

    fn master_status(
        &self,
        b: &Base,
        reloading: bool,
        answered: Vec<WorkerStatus>,
    ) -> MasterStatus {
        let mut workers: Vec<WorkerStatus> = b
            .procs
            .iter()
            .map(
                |(_, p)| match answered.iter().find(|s| s.pid == p.pid as u32) {
                    Some(s) => {
                        let mut s = s.clone();
                        s.worker_id = p.worker_id;
                        s
                    }
                    None => WorkerStatus {
                        pid: p.pid as u32,
                        worker_id: p.worker_id,
                        inc: p.inc,
                        listening: p.listeners.join(" "),
                        name: b.cfg.app.clone(),
                        state: "busy".into(),
                        ..Default::default()
                    },
                },
            )
            .collect();
        workers.sort_by_key(|w| (w.worker_id, w.pid));
        let mut exits: Vec<ExitStat> = b
            .exits
            .iter()
            .map(|(&status, &count)| ExitStat {
                name: b.cfg.app.clone(),
                status,
                count,
            })
            .collect();
        if !b.exits.contains_key(&0) {
            // Workerman always lists status 0, even with no exits.
            exits.insert(
                0,
                ExitStat {
                    name: b.cfg.app.clone(),
                    status: 0,
                    count: 0,
                },
            );
        }
        let phase = match b.phase {
            Phase::Starting { .. } => "starting",
            Phase::Running if reloading => "reloading",
            Phase::Running => "running",
            Phase::Stopping { .. } => "stopping",
        };
        MasterStatus {
            version: format!("kefu/{}", env!("CARGO_PKG_VERSION")),
            master_pid: std::process::id(),
            start_time: self.start_time,
            app: b.cfg.app.clone(),
            worker_count: b.slots.len(),
            phase: phase.into(),
            exits,
            workers,
            cluster: b.node.view(),
        }
    }
}
