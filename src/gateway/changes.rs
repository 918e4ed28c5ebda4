//! Which clients of a registry changed since a moment: what a reload's hand-over sends again at
//! its commit, after it copied the registry replica ahead while the worker went on serving
//! (docs/architecture.md, "Reload").
//!
//! A change is recorded by client, not as the operation: the commit sends each changed
//! client's state as it is then (present with its uid, groups and session, or gone), so the
//! order and number of operations do not matter, only which clients they touched.

use super::client_id::ClientId;
use std::collections::HashSet;

/// The changes recorded by a [`Registry`](super::registry::Registry).
#[derive(Debug, Default)]
pub enum Changes {
    /// Nothing is recorded (no hand-over under way).
    #[default]
    Off,
    /// Recording: the clients added, removed or changed since it began.
    On {
        /// The clients touched.
        clients: HashSet<ClientId>,
        /// Most clients recorded before giving up.
        cap: usize,
    },
    /// More than `cap` clients changed (a flood of connections and departures while the copy
    /// ran): the recording stopped, and the whole registry has to be sent again.
    Overflowed,
}

impl Changes {
    /// Start recording, forgetting what was recorded; gives up after `cap` clients (the
    /// memory the recording may take is bounded, whatever the cluster's churn).
    pub fn start(cap: usize) -> Changes {
        Changes::On {
            clients: HashSet::new(),
            cap,
        }
    }

    /// Whether clients are being recorded.
    pub fn is_on(&self) -> bool {
        matches!(self, Changes::On { .. })
    }

    /// Record that `c` changed.
    pub fn touch(&mut self, c: ClientId) {
        if let Changes::On { clients, cap } = self {
            clients.insert(c);
            if clients.len() > *cap {
                *self = Changes::Overflowed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::client_id::ConnId;

    fn c(slot: u32) -> ClientId {
        ClientId::new(1, ConnId { slot, gen: 0 })
    }

    #[test]
    fn records_each_client_once_and_gives_up_past_its_cap() {
        let mut off = Changes::Off;
        off.touch(c(1));
        assert!(matches!(off, Changes::Off));
        let mut ch = Changes::start(2);
        for s in [1, 2, 1, 2] {
            ch.touch(c(s));
        }
        match &ch {
            Changes::On { clients, .. } => assert_eq!(clients.len(), 2),
            other => panic!("{other:?}"),
        }
        ch.touch(c(3));
        assert!(matches!(ch, Changes::Overflowed));
        ch.touch(c(4));
        assert!(matches!(ch, Changes::Overflowed));
    }
}
