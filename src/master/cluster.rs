//! The master's side of the cluster: starting the relay, telling it which workers run here,
//! and handing the links it makes to the workers.

use super::*;
use crate::cluster::Cluster;

impl Master {
    /// Start the cluster threads if the config has a `[cluster]` section.
    pub(super) fn start_cluster(&mut self) -> io::Result<()> {
        if let Some(c) = &self.cfg.cluster {
            info!(
                "cluster: node {} on {} (lease {} ms)",
                c.node,
                redact(&c.redis),
                c.lease_ms
            );
            self.cluster = Some(Cluster::start(c, self.poll.registry(), CLUSTER)?);
        }
        Ok(())
    }

    /// A worker incarnation: in a cluster it carries the node id (see `crate::cluster::node_inc`).
    pub(super) fn cluster_inc(&self, local: u64) -> u64 {
        match &self.cfg.cluster {
            Some(c) => crate::cluster::node_inc(c.node, local),
            None => local,
        }
    }

    /// Tell the relay the workers of this node (after a spawn or a reap).
    pub(super) fn cluster_sync(&self) {
        if let Some(c) = &self.cluster {
            c.set_workers(
                self.procs
                    .iter()
                    .map(|(_, p)| (p.inc, p.worker_id as u16))
                    .collect(),
            );
        }
    }

    /// The relay made links: pass each to its worker (one gone meanwhile: the link is closed).
    pub(super) fn on_cluster_wake(&mut self) {
        let Some(c) = &self.cluster else {
            return;
        };
        let hs: Vec<_> = c.handovers.try_iter().collect();
        for h in hs {
            if let Some((_, p)) = self.procs.iter_mut().find(|(_, p)| p.inc == h.local) {
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
    pub(super) fn cluster_view(&self) -> Option<crate::cluster::View> {
        self.cluster.as_ref().map(Cluster::view)
    }

    /// Withdraw our lease on the way out.
    pub(super) fn leave_cluster(&mut self) {
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
