//! The routing index every worker keeps of every client in the cluster: uids, groups and
//! sessions. Each worker is the authority for its own clients and replicates changes to the
//! others over the bus, so lists and counts are answered locally without a round trip.
//!
//! Group and uid members are partitioned by owning worker, so a send knows which workers to
//! wake without walking the member list, and each worker fans out only to its own members.
//! All operations are idempotent: replaying a change is harmless.

use super::changes::Changes;
use super::client_id::{ClientId, ConnId};
use super::{ApiError, MAX_SESSION};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Members of one group or uid, by owning worker incarnation.
pub type Members = HashMap<u64, HashSet<ClientId>>;

/// What the cluster knows about one client.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ClientInfo {
    /// Bound uid, if any (one per client; many clients per uid).
    pub uid: Option<String>,
    /// Groups joined.
    pub groups: Vec<String>,
    /// Session data.
    pub session: Map<String, Value>,
}

impl ClientInfo {
    /// No uid, no group, no session: such a client needs no entry of its own.
    pub fn is_empty(&self) -> bool {
        self.uid.is_none() && self.groups.is_empty() && self.session.is_empty()
    }
}

/// The replicated index.
///
/// Presence is kept apart from what is known of a client, because most clients never get a
/// uid, a group or a session and every worker holds every client of the cluster: presence is
/// one packed `slot << 32 | gen` per client in its worker's set (about 9 bytes), and a
/// [`ClientInfo`] entry exists only while a present client has something in it.
#[derive(Debug, Default)]
pub struct Registry {
    /// Present clients: worker incarnation -> packed `(slot, gen)`. No empty sets.
    present: HashMap<u64, HashSet<u64>>,
    /// Number of present clients (sum of the `present` set sizes).
    count: usize,
    /// Info of present clients that have any (never an empty [`ClientInfo`]).
    info: HashMap<ClientId, ClientInfo>,
    uids: HashMap<String, Members>,
    groups: HashMap<String, Members>,
    /// What `get` answers for a present client without an info entry.
    empty: ClientInfo,
    /// The clients changed while a reload copies this replica ahead (see [`Changes`]).
    changes: Changes,
}

fn pack(c: ClientId) -> u64 {
    (u64::from(c.conn.slot) << 32) | u64::from(c.conn.gen)
}

fn unpack(inc: u64, k: u64) -> ClientId {
    ClientId::new(
        inc,
        ConnId {
            slot: (k >> 32) as u32,
            gen: k as u32,
        },
    )
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
        if self.present.entry(c.inc).or_default().insert(pack(c)) {
            self.count += 1;
            self.changes.touch(c);
        }
    }

    /// Forget a client; returns what was known of it.
    pub fn remove(&mut self, c: ClientId) -> Option<ClientInfo> {
        let set = self.present.get_mut(&c.inc)?;
        if !set.remove(&pack(c)) {
            return None;
        }
        if set.is_empty() {
            self.present.remove(&c.inc);
        }
        self.count -= 1;
        self.changes.touch(c);
        Some(self.forget_info(c))
    }

    /// Drop the info entry of `c` (if any) and its uid/group index entries.
    fn forget_info(&mut self, c: ClientId) -> ClientInfo {
        let info = self.info.remove(&c).unwrap_or_default();
        if let Some(u) = &info.uid {
            index_remove(&mut self.uids, u, c);
        }
        for g in &info.groups {
            index_remove(&mut self.groups, g, c);
        }
        info
    }

    /// Forget every client of a worker that died or was replaced; returns how many, and the
    /// uid, groups and session of those that had any (what an app may want to announce).
    pub fn drop_worker(&mut self, inc: u64) -> (usize, Vec<(ClientId, ClientInfo)>) {
        let Some(set) = self.present.remove(&inc) else {
            return (0, Vec::new());
        };
        let n = set.len();
        self.count -= n;
        if self.changes.is_on() {
            for &k in &set {
                self.changes.touch(unpack(inc, k));
            }
        }
        let mut gone = Vec::new();
        if !self.info.is_empty() {
            for k in set {
                let c = unpack(inc, k);
                let info = self.forget_info(c);
                if !info.is_empty() {
                    gone.push((c, info));
                }
            }
        }
        (n, gone)
    }

    /// The info entry of a present client, created if it has none yet.
    fn info_mut(&mut self, c: ClientId) -> Option<&mut ClientInfo> {
        if !self.is_online(c) {
            return None;
        }
        self.changes.touch(c);
        Some(self.info.entry(c).or_default())
    }

    /// Drop the info entry of `c` if nothing is left in it.
    fn tidy(&mut self, c: ClientId) {
        if self.info.get(&c).is_some_and(ClientInfo::is_empty) {
            self.info.remove(&c);
        }
    }

    /// Bind `uid` to `c` (replacing its previous uid).
    pub fn bind(&mut self, c: ClientId, uid: &str) {
        let Some(info) = self.info_mut(c) else {
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
        if let Some(old) = self.info.get_mut(&c).and_then(|i| i.uid.take()) {
            index_remove(&mut self.uids, &old, c);
            self.changes.touch(c);
            self.tidy(c);
        }
    }

    /// Add `c` to `group`.
    pub fn join(&mut self, c: ClientId, group: &str) {
        let Some(info) = self.info_mut(c) else {
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
        let Some(info) = self.info.get_mut(&c) else {
            return;
        };
        let before = info.groups.len();
        info.groups.retain(|g| g != group);
        if info.groups.len() != before {
            index_remove(&mut self.groups, group, c);
            self.changes.touch(c);
            self.tidy(c);
        }
    }

    /// Remove every member from `group` (the group disappears).
    pub fn ungroup(&mut self, group: &str) {
        let Some(members) = self.groups.remove(group) else {
            return;
        };
        for c in members.into_values().flatten() {
            if let Some(info) = self.info.get_mut(&c) {
                info.groups.retain(|g| g != group);
                self.changes.touch(c);
                self.tidy(c);
            }
        }
    }

    /// Replace the session of `c`.
    pub fn set_session(&mut self, c: ClientId, s: Map<String, Value>) {
        if s.is_empty() {
            if let Some(info) = self.info.get_mut(&c) {
                info.session = s;
                self.changes.touch(c);
                self.tidy(c);
            }
        } else if let Some(info) = self.info_mut(c) {
            info.session = s;
        }
    }

    /// Merge `patch` into the session of `c` (see [`merge_into`]); refused, and nothing
    /// changed, when the result would exceed [`MAX_SESSION`].
    pub fn merge_session(
        &mut self,
        c: ClientId,
        patch: Map<String, Value>,
    ) -> Result<(), ApiError> {
        if patch.is_empty() {
            return Ok(());
        }
        let (next, _) = self.next_session(c, patch, true)?;
        self.set_session(c, next);
        Ok(())
    }

    /// The session `c` would have after `patch` (merged into its current one, or replacing
    /// it), with its JSON. The cap applies to this result, not to the patch: small patches
    /// add up, and every worker holds a copy of every session.
    pub fn next_session(
        &self,
        c: ClientId,
        patch: Map<String, Value>,
        merge: bool,
    ) -> Result<(Map<String, Value>, Vec<u8>), ApiError> {
        let mut next = match self.get(c) {
            Some(info) if merge => info.session.clone(),
            Some(_) => Map::new(),
            None => return Err(ApiError::NotOnline),
        };
        merge_into(&mut next, patch);
        let bytes = serde_json::to_vec(&next).unwrap_or_default();
        if bytes.len() > MAX_SESSION {
            return Err(ApiError::SessionTooLarge);
        }
        Ok((next, bytes))
    }

    /// What is known of `c` (an empty [`ClientInfo`] for a present client without any).
    pub fn get(&self, c: ClientId) -> Option<&ClientInfo> {
        match self.info.get(&c) {
            Some(info) => Some(info),
            None => self.is_online(c).then_some(&self.empty),
        }
    }

    /// Mutable access to what is known of `c` (creates its info entry). Prefer the dedicated
    /// setters: an entry emptied through this reference stays until the next change or removal.
    pub fn get_mut(&mut self, c: ClientId) -> Option<&mut ClientInfo> {
        self.info_mut(c)
    }

    /// Whether `c` is online anywhere.
    pub fn is_online(&self, c: ClientId) -> bool {
        self.present
            .get(&c.inc)
            .is_some_and(|s| s.contains(&pack(c)))
    }

    /// Number of clients in the cluster.
    pub fn client_count(&self) -> usize {
        self.count
    }

    /// Every client, sorted.
    pub fn client_list(&self) -> Vec<ClientId> {
        let mut v: Vec<ClientId> = Vec::with_capacity(self.count);
        for (&inc, set) in &self.present {
            v.extend(set.iter().map(|&k| unpack(inc, k)));
        }
        v.sort();
        v
    }

    /// Every client with its info (an empty [`ClientInfo`] for clients without any).
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, &ClientInfo)> {
        self.present.iter().flat_map(move |(&inc, set)| {
            set.iter().map(move |&k| {
                let c = unpack(inc, k);
                (c, self.info.get(&c).unwrap_or(&self.empty))
            })
        })
    }

    /// Every client, in no particular order.
    pub fn clients(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.present
            .iter()
            .flat_map(|(&inc, set)| set.iter().map(move |&k| unpack(inc, k)))
    }

    /// Start recording which clients change (forgetting any earlier recording), up to `cap`
    /// of them: a reload's hand-over copies the replica ahead and then sends again only
    /// these.
    pub fn track(&mut self, cap: usize) {
        self.changes = Changes::start(cap);
    }

    /// Stop recording; what was recorded.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// Clients of worker `inc`.
    pub fn clients_of_worker(&self, inc: u64) -> impl Iterator<Item = ClientId> + '_ {
        self.present
            .get(&inc)
            .into_iter()
            .flatten()
            .map(move |&k| unpack(inc, k))
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
            .filter_map(|c| self.info.get(&c)?.uid.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Worker incarnations holding at least one client.
    pub fn worker_incs(&self) -> impl Iterator<Item = u64> + '_ {
        self.present.keys().copied()
    }

    /// Number of info entries (clients with a uid, a group or a session).
    pub fn info_count(&self) -> usize {
        self.info.len()
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
        ClientId::new(inc, ConnId { slot, gen: 0 })
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
        assert_eq!(r.drop_worker(1).0, 2);
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

    fn c2(inc: u64, slot: u32, gen: u32) -> ClientId {
        ClientId::new(inc, ConnId { slot, gen })
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn presence_without_info() {
        let mut r = Registry::default();
        let a = c2(7, u32::MAX, u32::MAX);
        let b = c2(7, 0, 0);
        let d = c2(8, 3, 1);
        for x in [a, b, d, a] {
            r.add(x);
        }
        assert_eq!(r.client_count(), 3);
        assert_eq!(r.info_count(), 0);
        assert!(r.is_online(a) && r.is_online(b) && r.is_online(d));
        // Same slot, other generation: another (absent) client.
        assert!(!r.is_online(c2(7, 0, 1)));
        assert!(!r.is_online(c2(9, 0, 0)));
        assert_eq!(r.get(a), Some(&ClientInfo::default()));
        assert_eq!(r.get(c2(7, 0, 1)), None);
        assert_eq!(r.client_list(), vec![b, a, d]);
        let mut it: Vec<_> = r.iter().map(|(c, i)| (c, i.is_empty())).collect();
        it.sort();
        assert_eq!(it, vec![(b, true), (a, true), (d, true)]);
        let mut w7: Vec<_> = r.clients_of_worker(7).collect();
        w7.sort();
        assert_eq!(w7, vec![b, a]);
        let mut incs: Vec<_> = r.worker_incs().collect();
        incs.sort();
        assert_eq!(incs, vec![7, 8]);
        assert_eq!(r.remove(a), Some(ClientInfo::default()));
        assert_eq!(r.remove(a), None);
        assert_eq!(r.remove(c2(7, 0, 1)), None);
        assert_eq!(r.client_count(), 2);
        r.remove(d);
        assert_eq!(r.worker_incs().collect::<Vec<_>>(), vec![7]);
        assert_eq!(r.clients_of_worker(8).count(), 0);
    }

    #[test]
    fn info_entry_dropped_when_empty() {
        let mut r = Registry::default();
        let a = c(1, 1);
        r.add(a);
        r.bind(a, "u");
        r.join(a, "g");
        r.set_session(a, obj(json!({"k": 1})));
        assert_eq!(r.info_count(), 1);
        r.unbind(a);
        r.leave(a, "g");
        assert_eq!(r.info_count(), 1, "session still set");
        r.set_session(a, Map::new());
        assert_eq!(r.info_count(), 0);
        assert_eq!(r.get(a), Some(&ClientInfo::default()));
        // Each kind of info alone creates and, once gone, drops the entry.
        r.bind(a, "u");
        assert_eq!(r.get(a).unwrap().uid.as_deref(), Some("u"));
        r.unbind(a);
        assert_eq!(r.info_count(), 0);
        r.join(a, "g");
        r.ungroup("g");
        assert_eq!(r.info_count(), 0);
        assert!(r.group_ids().is_empty());
        r.merge_session(a, obj(json!({"o": {"x": 1}}))).unwrap();
        r.merge_session(a, obj(json!({"o": {"y": 2}}))).unwrap();
        assert_eq!(
            Value::Object(r.get(a).unwrap().session.clone()),
            json!({"o": {"x": 1, "y": 2}})
        );
        r.set_session(a, Map::new());
        assert_eq!(r.info_count(), 0);
        // No-ops create nothing.
        r.unbind(a);
        r.leave(a, "g");
        r.set_session(a, Map::new());
        r.merge_session(a, Map::new()).unwrap();
        assert_eq!(r.info_count(), 0);
        // get_mut creates on demand, for present clients only.
        r.get_mut(a).unwrap().session = obj(json!({"s": true}));
        assert_eq!(r.get(a).unwrap().session.len(), 1);
        assert!(r.get_mut(c(1, 2)).is_none());
        r.bind(c(1, 2), "x");
        r.set_session(c(1, 2), obj(json!({"s": 1})));
        assert_eq!(r.info_count(), 1);
        // Removal drops the entry and the index entries.
        r.bind(a, "u");
        r.join(a, "g");
        let info = r.remove(a).unwrap();
        assert_eq!(info.uid.as_deref(), Some("u"));
        assert_eq!(info.groups, vec!["g".to_string()]);
        assert_eq!(r.info_count(), 0);
        assert!(r.uid_list().is_empty() && r.group_ids().is_empty());
    }

    #[test]
    fn session_cap_applies_to_the_merged_result() {
        let mut r = Registry::default();
        let a = c(1, 1);
        r.add(a);
        let big = "x".repeat(MAX_SESSION / 2);
        r.merge_session(a, obj(json!({"a": big}))).unwrap();
        // Each patch is under the cap; together they are not.
        assert_eq!(
            r.merge_session(a, obj(json!({"b": big}))),
            Err(ApiError::SessionTooLarge)
        );
        assert_eq!(r.get(a).unwrap().session.len(), 1, "nothing merged");
        assert_eq!(
            r.next_session(a, obj(json!({"b": big})), true).map(|_| ()),
            Err(ApiError::SessionTooLarge)
        );
        // Replacing is measured without the old session.
        assert!(r.next_session(a, obj(json!({"b": big})), false).is_ok());
        assert_eq!(
            r.next_session(c(1, 9), Map::new(), true).map(|_| ()),
            Err(ApiError::NotOnline)
        );
    }

    #[test]
    fn drop_worker_counts_and_lists() {
        let mut r = Registry::default();
        for inc in 1..=3 {
            for slot in 0..100 {
                r.add(c2(inc, slot, slot * 7));
            }
        }
        for slot in (0..100).step_by(10) {
            r.bind(c2(2, slot, slot * 7), "u2");
            r.join(c2(2, slot, slot * 7), "all");
            r.join(c2(3, slot, slot * 7), "all");
        }
        assert_eq!(r.client_count(), 300);
        assert_eq!(r.client_list().len(), 300);
        assert_eq!(r.info_count(), 20);
        assert_eq!(r.group_count("all"), 20);
        assert_eq!(r.uid_clients("u2").len(), 10);
        assert_eq!(r.uids_in_group("all"), vec!["u2".to_string()]);
        assert_eq!(r.drop_worker(2).0, 100);
        assert_eq!(r.drop_worker(2).0, 0);
        assert_eq!(r.client_count(), 200);
        assert_eq!(r.info_count(), 10);
        assert!(r.uid_list().is_empty());
        assert_eq!(r.group_count("all"), 10);
        assert!(r.uids_in_group("all").is_empty());
        assert_eq!(r.group("all").unwrap().keys().collect::<Vec<_>>(), vec![&3]);
        assert!(!r.is_online(c2(2, 0, 0)));
        assert!(r.get(c2(2, 10, 70)).is_none());
        let list = r.client_list();
        assert_eq!(list.len(), 200);
        assert!(list.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(r.iter().count(), 200);
        assert_eq!(r.drop_worker(1).0, 100);
        assert_eq!(r.drop_worker(3).0, 100);
        assert_eq!(r.client_count(), 0);
        assert_eq!(r.info_count(), 0);
        assert!(r.group_ids().is_empty());
        assert_eq!(r.worker_incs().count(), 0);
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
