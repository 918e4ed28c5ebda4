//! Which BusinessWorker serves which client: GatewayWorker's `routerBind` with least
//! connections. A client stays with its BusinessWorker; a new one, or one whose worker went
//! away, goes to the least loaded.

use super::msg::ConnNo;
use std::collections::HashMap;

/// The linked BusinessWorkers and the clients bound to them.
#[derive(Debug, Default)]
pub(super) struct Routes {
    /// Key (`ip:name:index`), clients bound, peer slot.
    workers: Vec<(String, usize, usize)>,
    /// Which BusinessWorker each client is bound to.
    bound: HashMap<ConnNo, String>,
}

impl Routes {
    /// The peer slot of the BusinessWorker for an event of `conn` (bound now if it was not);
    /// `None` when no BusinessWorker is linked. `last` (the client's close) unbinds it.
    pub(super) fn pick(&mut self, conn: ConnNo, last: bool) -> Option<usize> {
        let at = match self
            .bound
            .get(&conn)
            .and_then(|k| self.workers.iter().position(|(w, _, _)| w == k))
        {
            Some(at) => at,
            None => {
                let (at, _) = self
                    .workers
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (_, n, _))| *n)?;
                self.workers[at].1 += 1;
                self.bound.insert(conn, self.workers[at].0.clone());
                at
            }
        };
        if last {
            self.bound.remove(&conn);
            self.workers[at].1 = self.workers[at].1.saturating_sub(1);
        }
        Some(self.workers[at].2)
    }

    /// A BusinessWorker linked on `slot`; the slot of an earlier one with the same key, which
    /// the caller closes (the new one replaces it, as in GatewayWorker).
    pub(super) fn add(&mut self, key: String, slot: usize) -> Option<usize> {
        let old = self
            .workers
            .iter()
            .position(|(k, _, _)| *k == key)
            .map(|at| self.workers.remove(at).2);
        self.workers.push((key, 0, slot));
        old
    }

    /// The BusinessWorker on `slot` went away: its clients are routed again on their next
    /// event.
    pub(super) fn remove(&mut self, slot: usize) {
        self.workers.retain(|w| w.2 != slot);
    }

    /// The peer slots of every BusinessWorker.
    pub(super) fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.workers.iter().map(|w| w.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_least_connections_and_takeover() {
        let mut r = Routes::default();
        assert_eq!(r.pick(1, false), None);
        r.add("a".into(), 10);
        r.add("b".into(), 11);
        assert_eq!(r.pick(1, false), Some(10));
        assert_eq!(r.pick(2, false), Some(11));
        assert_eq!(r.pick(1, false), Some(10), "sticky");
        r.remove(10);
        assert_eq!(r.pick(1, false), Some(11), "taken over");
        // The same key again replaces the old link.
        assert_eq!(r.add("b".into(), 12), Some(11));
        assert_eq!(r.pick(2, true), Some(12));
    }
}
