//! The master's side of the cluster ([`Node`]): starting the relay, telling it which workers
//! run here, and handing the links it makes to the workers.

use super::*;
use crate::cluster::Cluster;

/// The node's cluster threads, when `[cluster]` is configured.
#[derive(Debug, Default)]
pub(super) struct Node {
    cluster: Option<Cluster>,
    /// Successors of a reload whose hand-over is under way (spawned with a hand-over socket,
    /// or adopting): while there is one, the relay is not told anything (see `sync`).
    held: Vec<usize>,
}

impl Node {
    /// Start the cluster threads if the config has a `[cluster]` section.
    pub(super) fn start(
        &mut self,
        cfg: &Config,
        registry: &mio::Registry,
        token: Token,
    ) -> io::Result<()> {
        if let Some(c) = &cfg.cluster {
            info!(
                "cluster: node {} on {} (lease {} ms)",
                c.node,
                redact(&c.redis),
                c.lease_ms
            );
            self.cluster = Some(Cluster::start(c, registry, token)?);
        }
        Ok(())
    }

    /// A worker incarnation: in a cluster it carries the node id (see `crate::cluster::node_inc`).
    pub(super) fn inc(&self, cfg: &Config, local: u64) -> u64 {
        match &cfg.cluster {
            Some(c) => crate::cluster::node_inc(c.node, local),
            None => local,
        }
    }

    /// Tell the relay the workers of this node (after a spawn, an adoption or a reap).
    pub(super) fn sync(&self, procs: &Slab<Proc>) {
        // A successor taking a worker over will speak as that worker's incarnation, which
        // may already have exited: reported now, the relay would drop that incarnation's
        // links (the very sockets the successor adopts, so it would forget every remote
        // client) and link the successor's fresh incarnation, which it never speaks as. The
        // slots hand over in parallel, so one held successor holds the whole report; the
        // last one released sends it (`hold`).
        if !self.held.is_empty() {
            return;
        }
        if let Some(c) = &self.cluster {
            c.set_workers(
                procs
                    .iter()
                    .map(|(_, p)| (p.inc, p.worker_id as u16))
                    .collect(),
            );
        }
    }

    /// The successors whose hand-over is under way are now `held`: once none is left, the
    /// relay learns the workers (the report held back meanwhile).
    pub(super) fn hold(&mut self, held: Vec<usize>, procs: &Slab<Proc>) {
        let released = !self.held.is_empty() && held.is_empty();
        self.held = held;
        if released {
            self.sync(procs);
        }
    }

    /// The relay made links: pass each to its worker (one gone meanwhile: the link is closed).
    /// After a hand-over the retiring worker still has the incarnation its successor took: the
    /// link goes to the one still serving.
    pub(super) fn on_wake(&mut self, procs: &mut Slab<Proc>) {
        let Some(c) = &self.cluster else {
            return;
        };
        for h in c.handovers.try_iter() {
            let to = procs
                .iter_mut()
                .filter(|(_, p)| p.inc == h.local)
                .max_by_key(|(_, p)| p.live());
            if let Some((_, p)) = to {
                p.chan.send_with_fd(
                    &MasterMsg::Peer {
                        inc: h.remote,
                        worker_id: h.remote_worker as usize,
                    },
                    h.fd,
                );
            }
        }
    }

    /// The cluster as seen from here, for `kefu status`.
    pub(super) fn view(&self) -> Option<crate::cluster::View> {
        self.cluster.as_ref().map(Cluster::view)
    }

    /// Withdraw our lease on the way out.
    pub(super) fn leave(&mut self) {
        if let Some(c) = self.cluster.take() {
            c.leave();
        }
    }
}

/// A Redis URL without its password, for the log.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}
