//! Status and connections queries: fanned out to every worker, answered when all replied or
//! after [`QUERY_TIMEOUT`] (silent workers are shown as busy).

use super::*;

/// Time workers get to answer a status/connections query; silent ones are shown as busy.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QueryKind {
    Status,
    Connections,
}

/// A status/connections request fanned out to the workers.
#[derive(Debug)]
pub(super) struct Query {
    pub(super) req: u64,
    pub(super) kind: QueryKind,
    pub(super) client: usize,
    pub(super) waiting: Vec<i32>,
    pub(super) statuses: Vec<WorkerStatus>,
    pub(super) conns: Vec<ConnInfo>,
    pub(super) deadline: Instant,
}

impl Master {
    pub(super) fn begin_query(&mut self, client: usize, kind: QueryKind) {
        let req = self.next_req;
        self.next_req += 1;
        let msg = match kind {
            QueryKind::Status => MasterMsg::Status { req },
            QueryKind::Connections => MasterMsg::Connections { req },
        };
        let mut waiting = Vec::new();
        for (_, p) in self.procs.iter_mut() {
            if p.chan.closed {
                continue;
            }
            p.chan.send(&msg);
            if !p.chan.closed {
                waiting.push(p.pid);
            }
        }
        self.queries.push(Query {
            req,
            kind,
            client,
            waiting,
            statuses: Vec::new(),
            conns: Vec::new(),
            deadline: Instant::now() + QUERY_TIMEOUT,
        });
        self.finish_queries(Instant::now());
    }

    /// Answer every query that is complete or past its deadline.
    pub(super) fn finish_queries(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.queries.len() {
            let q = &self.queries[i];
            if !q.waiting.is_empty() && q.deadline > now {
                i += 1;
                continue;
            }
            let q = self.queries.swap_remove(i);
            let reply = match q.kind {
                QueryKind::Status => CliReply::Status {
                    status: self.master_status(q.statuses),
                },
                QueryKind::Connections => CliReply::Connections { conns: q.conns },
            };
            self.reply(q.client, reply);
        }
    }

    pub(super) fn master_status(&self, answered: Vec<WorkerStatus>) -> MasterStatus {
        let mut workers: Vec<WorkerStatus> = self
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
                        name: self.cfg.app.clone(),
                        state: "busy".into(),
                        ..Default::default()
                    },
                },
            )
            .collect();
        workers.sort_by_key(|w| (w.worker_id, w.pid));
        let mut exits: Vec<ExitStat> = self
            .exits
            .iter()
            .map(|(&status, &count)| ExitStat {
                name: self.cfg.app.clone(),
                status,
                count,
            })
            .collect();
        if !self.exits.contains_key(&0) {
            // Workerman always lists status 0, even with no exits.
            exits.insert(
                0,
                ExitStat {
                    name: self.cfg.app.clone(),
                    status: 0,
                    count: 0,
                },
            );
        }
        let phase = match self.phase {
            Phase::Starting { .. } => "starting",
            Phase::Running if self.reload.is_some() => "reloading",
            Phase::Running => "running",
            Phase::Stopping { .. } => "stopping",
        };
        MasterStatus {
            version: format!("kefu/{}", env!("CARGO_PKG_VERSION")),
            master_pid: std::process::id(),
            start_time: self.start_time,
            app: self.cfg.app.clone(),
            worker_count: self.slots.len(),
            phase: phase.into(),
            exits,
            workers,
            cluster: self.cluster_view(),
        }
    }
}
