//! The routing index every worker keeps of every client in the cluster: uids, groups and
//! sessions. Each worker is the authority for its own clients and replicates changes to the
//! others over the bus, so lists and counts are answered locally without a round trip.
//!
//! Group and uid members are partitioned by owning worker, so a send knows which workers to
//! wake without walking the member list, and each worker fans out only to its own members.
//! All operations are idempotent: replaying a change is harmless.

use super::client_id::ClientId;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Members of one group or uid, by owning worker incarnation.
pub type Members = HashMap<u64, HashSet<ClientId>>;

/// What the cluster knows about one client.
#[derive(Debug, Default, Clone)]
pub struct ClientInfo {
    /// Bound uid, if any (one per client; many clients per uid).
    pub uid: Option<String>,
    /// Groups joined.
    pub groups: Vec<String>,
    /// Session data.
    pub session: Map<String, Value>,
}

/// The replicated index.
#[derive(Debug, Default)]
pub struct Registry {
    clients: HashMap<ClientId, ClientInfo>,
    uids: HashMap<String, Members>,
    groups: HashMap<String, Members>,
    workers: HashMap<u64, HashSet<ClientId>>,
}

fn index_add(map: &mut HashMap<String, Members>, key: &str, c: ClientId) {
    map.entry(key.to_owned())
        .or_default()
        .entry(c.inc)
        .or_default()
        .insert(c);
}

fn index_remove(map: &mut HashMap<String, Members>, key: &str, c: ClientId) {
    if let Some(m) = map.get_mut(key) {
        if let Some(set) = m.get_mut(&c.inc) {
            set.remove(&c);
            if set.is_empty() {
                m.remove(&c.inc);
            }
        }
        if m.is_empty() {
            map.remove(key);
        }
    }
}

fn count(m: Option<&Members>) -> usize {
    m.map(|m| m.values().map(HashSet::len).sum()).unwrap_or(0)
}

/// Merge `patch` into `base` the way PHP's array_replace_recursive does: objects merge key by
/// key, anything else replaces.
pub fn merge_into(base: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(p)) => merge_into(b, p),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Registry {
    /// Record a client (no-op if known).
    pub fn add(&mut self, c: ClientId) {
        self.clients.entry(c).or_default();
        self.workers.entry(c.inc).or_default().insert(c);
    }

    /// Forget a client; returns what was known of it.
    pub fn remove(&mut self, c: ClientId) -> Option<ClientInfo> {
        let info = self.clients.remove(&c)?;
        if let Some(u) = &info.uid {
            index_remove(&mut self.uids, u, c);
        }
        for g in &info.groups {
            index_remove(&mut self.groups, g, c);
        }
        if let Some(w) = self.workers.get_mut(&c.inc) {
            w.remove(&c);
            if w.is_empty() {
                self.workers.remove(&c.inc);
            }
        }
        Some(info)
    }

    /// Forget every client of a worker that died or was replaced; returns how many.
    pub fn drop_worker(&mut self, inc: u64) -> usize {
        let Some(set) = self.workers.remove(&inc) else {
            return 0;
        };
        let n = set.len();
        for c in set {
            self.remove(c);
        }
        n
    }

    /// Bind `uid` to `c` (replacing its previous uid).
    pub fn bind(&mut self, c: ClientId, uid: &str) {
        let Some(info) = self.clients.get_mut(&c) else {
            return;
        };
        if info.uid.as_deref() == Some(uid) {
            return;
        }
        if let Some(old) = info.uid.replace(uid.to_owned()) {
            index_remove(&mut self.uids, &old, c);
        }
        index_add(&mut self.uids, uid, c);
    }

    /// Remove the uid of `c`.
    pub fn unbind(&mut self, c: ClientId) {
        if let Some(old) = self.clients.get_mut(&c).and_then(|i| i.uid.take()) {
            index_remove(&mut self.uids, &old, c);
        }
    }

    /// Add `c` to `group`.
    pub fn join(&mut self, c: ClientId, group: &str) {
        let Some(info) = self.clients.get_mut(&c) else {
            return;
        };
        if info.groups.iter().any(|g| g == group) {
            return;
        }
        info.groups.push(group.to_owned());
        index_add(&mut self.groups, group, c);
    }

    /// Remove `c` from `group`.
    pub fn leave(&mut self, c: ClientId, group: &str) {
        let Some(info) = self.clients.get_mut(&c) else {
            return;
        };
        let before = info.groups.len();
        info.groups.retain(|g| g != group);
        if info.groups.len() != before {
            index_remove(&mut self.groups, group, c);
        }
    }

    /// Remove every member from `group` (the group disappears).
    pub fn ungroup(&mut self, group: &str) {
        let Some(members) = self.groups.remove(group) else {
            return;
        };
        for c in members.into_values().flatten() {
            if let Some(info) = self.clients.get_mut(&c) {
                info.groups.retain(|g| g != group);
            }
        }
    }

    /// Replace the session of `c`.
    pub fn set_session(&mut self, c: ClientId, s: Map<String, Value>) {
        if let Some(info) = self.clients.get_mut(&c) {
            info.session = s;
        }
    }

    /// What is known of `c`.
    pub fn get(&self, c: ClientId) -> Option<&ClientInfo> {
        self.clients.get(&c)
    }

    /// Mutable access to what is known of `c` (the owner edits sessions in place).
    pub fn get_mut(&mut self, c: ClientId) -> Option<&mut ClientInfo> {
        self.clients.get_mut(&c)
    }

    /// Whether `c` is online anywhere.
    pub fn is_online(&self, c: ClientId) -> bool {
        self.clients.contains_key(&c)
    }

    /// Number of clients in the cluster.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Every client, sorted.
    pub fn client_list(&self) -> Vec<ClientId> {
        let mut v: Vec<ClientId> = self.clients.keys().copied().collect();
        v.sort();
        v
    }

    /// Every client with its info.
    pub fn iter(&self) -> impl Iterator<Item = (&ClientId, &ClientInfo)> {
        self.clients.iter()
    }

    /// Clients of worker `inc`.
    pub fn clients_of_worker(&self, inc: u64) -> impl Iterator<Item = ClientId> + '_ {
        self.workers.get(&inc).into_iter().flatten().copied()
    }

    /// Members of `group` by worker.
    pub fn group(&self, group: &str) -> Option<&Members> {
        self.groups.get(group)
    }

    /// Clients bound to `uid`, by worker.
    pub fn uid(&self, uid: &str) -> Option<&Members> {
        self.uids.get(uid)
    }

    /// Members of `group`, sorted.
    pub fn group_list(&self, group: &str) -> Vec<ClientId> {
        sorted(self.groups.get(group))
    }

    /// Number of members of `group` (all clients for `None`).
    pub fn group_count(&self, group: &str) -> usize {
        count(self.groups.get(group))
    }

    /// Clients bound to `uid`, sorted.
    pub fn uid_clients(&self, uid: &str) -> Vec<ClientId> {
        sorted(self.uids.get(uid))
    }

    /// Every group id, sorted.
    pub fn group_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self.groups.keys().cloned().collect();
        v.sort();
        v
    }

    /// Every bound uid, sorted.
    pub fn uid_list(&self) -> Vec<String> {
        let mut v: Vec<String> = self.uids.keys().cloned().collect();
        v.sort();
        v
    }

    /// Distinct uids among the members of `group`, sorted.
    pub fn uids_in_group(&self, group: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .group_list(group)
            .into_iter()
            .filter_map(|c| self.clients.get(&c)?.uid.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Worker incarnations holding at least one client.
    pub fn worker_incs(&self) -> impl Iterator<Item = u64> + '_ {
        self.workers.keys().copied()
    }
}

fn sorted(m: Option<&Members>) -> Vec<ClientId> {
    let mut v: Vec<ClientId> = m
        .into_iter()
        .flat_map(|m| m.values().flatten().copied())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(inc: u64, slot: u32) -> ClientId {
        ClientId { inc, slot, gen: 0 }
    }

    #[test]
    fn groups_uids_and_worker_drop() {
        let mut r = Registry::default();
        for (w, s) in [(1, 1), (1, 2), (2, 1)] {
            r.add(c(w, s));
        }
        r.join(c(1, 1), "room");
        r.join(c(2, 1), "room");
        r.join(c(2, 1), "room");
        r.bind(c(1, 1), "u1");
        r.bind(c(1, 2), "u1");
        r.bind(c(1, 2), "u2");
        assert_eq!(r.group_count("room"), 2);
        assert_eq!(r.group("room").unwrap().len(), 2);
        assert_eq!(r.uid_clients("u1"), vec![c(1, 1)]);
        assert_eq!(r.uid_list(), vec!["u1".to_string(), "u2".to_string()]);
        assert_eq!(r.uids_in_group("room"), vec!["u1".to_string()]);
        assert_eq!(r.drop_worker(1), 2);
        assert_eq!(r.client_list(), vec![c(2, 1)]);
        assert!(r.uid_list().is_empty());
        assert_eq!(r.group_list("room"), vec![c(2, 1)]);
        r.leave(c(2, 1), "room");
        assert!(r.group_ids().is_empty());
        r.join(c(2, 1), "a");
        r.join(c(2, 1), "b");
        r.ungroup("a");
        assert_eq!(r.group_ids(), vec!["b".to_string()]);
        assert_eq!(r.get(c(2, 1)).unwrap().groups, vec!["b".to_string()]);
        // Unknown clients are ignored, not created.
        r.join(c(9, 9), "x");
        assert!(!r.is_online(c(9, 9)));
    }

    #[test]
    fn merge_is_recursive() {
        let mut base = json!({"a":1,"o":{"x":1,"y":2}})
            .as_object()
            .unwrap()
            .clone();
        let patch = json!({"b":2,"o":{"y":3}}).as_object().unwrap().clone();
        merge_into(&mut base, patch);
        assert_eq!(Value::Object(base), json!({"a":1,"b":2,"o":{"x":1,"y":3}}));
    }
}
