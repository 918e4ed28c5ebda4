//! Owner-side operations: a worker changes the state of its own clients here, then tells
//! every other worker. Deliveries to this worker's own clients also live here, shared by
//! local sends and by sends arriving over the bus.

use super::bus::wire::{BusMsg, Key, Kind};
use super::client_id::ClientId;
use super::registry::merge_into;
use super::{check_group, check_uid, ApiError, MAX_GROUPS_PER_CLIENT, MAX_SESSION};
use crate::app::Payload;
use crate::connection::Framing;
use crate::worker::ctx::{ConnId, Core, Encoded};
use serde_json::{Map, Value};

/// Key of a local connection on the wire.
pub fn key(id: ConnId) -> Key {
    Key {
        slot: id.slot,
        gen: id.gen,
    }
}

/// Local connection from a wire key.
pub fn conn(k: Key) -> ConnId {
    ConnId {
        slot: k.slot,
        gen: k.gen,
    }
}

/// Wire kind and bytes of a payload.
pub fn split(msg: Payload<'_>) -> (Kind, &[u8]) {
    match msg {
        Payload::Text(s) => (Kind::Text, s.as_bytes()),
        Payload::Binary(b) => (Kind::Binary, b),
    }
}

/// Payload from wire kind and bytes (text that is not UTF-8 degrades to binary).
pub fn join(kind: Kind, b: &[u8]) -> Payload<'_> {
    match kind {
        Kind::Text => match std::str::from_utf8(b) {
            Ok(s) => Payload::Text(s),
            Err(_) => Payload::Binary(b),
        },
        Kind::Binary => Payload::Binary(b),
    }
}

impl Core {
    fn owned(&self, id: ConnId) -> Option<ClientId> {
        let c = self.client_id(id);
        self.reg.is_online(c).then_some(c)
    }

    /// A local connection became a gateway client.
    pub fn local_up(&mut self, id: ConnId) {
        let c = self.client_id(id);
        self.reg.add(c);
        self.bus.broadcast(&BusMsg::Up(key(id)));
    }

    /// A local client is gone.
    pub fn local_down(&mut self, id: ConnId) {
        let c = self.client_id(id);
        if self.reg.remove(c).is_some() {
            self.bus.broadcast(&BusMsg::Down(key(id)));
        }
    }

    /// Add a local client to a group.
    pub fn local_join(&mut self, id: ConnId, group: &str) -> Result<(), ApiError> {
        check_group(group)?;
        let c = self.owned(id).ok_or(ApiError::NotOnline)?;
        let info = self.reg.get(c).ok_or(ApiError::NotOnline)?;
        if info.groups.iter().any(|g| g == group) {
            return Ok(());
        }
        if info.groups.len() >= MAX_GROUPS_PER_CLIENT {
            return Err(ApiError::TooManyGroups);
        }
        self.reg.join(c, group);
        self.bus.broadcast(&BusMsg::Join(key(id), group));
        Ok(())
    }

    /// Remove a local client from a group.
    pub fn local_leave(&mut self, id: ConnId, group: &str) -> Result<(), ApiError> {
        let c = self.owned(id).ok_or(ApiError::NotOnline)?;
        self.reg.leave(c, group);
        self.bus.broadcast(&BusMsg::Leave(key(id), group));
        Ok(())
    }

    /// Bind a uid to a local client.
    pub fn local_bind(&mut self, id: ConnId, uid: &str) -> Result<(), ApiError> {
        check_uid(uid)?;
        let c = self.owned(id).ok_or(ApiError::NotOnline)?;
        self.reg.bind(c, uid);
        self.bus.broadcast(&BusMsg::Bind(key(id), uid));
        Ok(())
    }

    /// Unbind the uid of a local client.
    pub fn local_unbind(&mut self, id: ConnId) -> Result<(), ApiError> {
        let c = self.owned(id).ok_or(ApiError::NotOnline)?;
        self.reg.unbind(c);
        self.bus.broadcast(&BusMsg::Unbind(key(id)));
        Ok(())
    }

    /// Replace (or with `merge`, merge into) a local client's session.
    pub fn local_session(
        &mut self,
        id: ConnId,
        data: Map<String, Value>,
        merge: bool,
    ) -> Result<(), ApiError> {
        let c = self.owned(id).ok_or(ApiError::NotOnline)?;
        let info = self.reg.get(c).ok_or(ApiError::NotOnline)?;
        let mut next = if merge {
            info.session.clone()
        } else {
            Map::new()
        };
        merge_into(&mut next, data);
        let bytes = serde_json::to_vec(&next).unwrap_or_default();
        if bytes.len() > MAX_SESSION {
            return Err(ApiError::SessionTooLarge);
        }
        self.reg.set_session(c, next);
        self.bus.broadcast(&BusMsg::Session(key(id), &bytes));
        Ok(())
    }

    /// Remove every local client from `group`.
    pub fn local_ungroup(&mut self, group: &str) {
        let mine: Vec<ClientId> = self
            .reg
            .group(group)
            .and_then(|m| m.get(&self.inc))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for c in mine {
            if let Some(id) = self.local(c) {
                let _ = self.local_leave(id, group);
            }
        }
    }

    /// Queue `enc` on the local connections listed in `self.slots`.
    fn queue_slots(&mut self, enc: &Encoded<'_>, slots: &mut Vec<usize>) {
        for &s in slots.iter() {
            enc.queue(self, s);
        }
        slots.clear();
    }

    /// Deliver to this worker's members of `groups`, once each, except `exclude`.
    pub fn deliver_groups(&mut self, groups: &[&str], exclude: &[ConnId], msg: Payload<'_>) {
        let mut slots = std::mem::take(&mut self.slots);
        for g in groups {
            if let Some(set) = self.reg.group(g).and_then(|m| m.get(&self.inc)) {
                slots.extend(
                    set.iter()
                        .filter(|c| {
                            !exclude.contains(&ConnId {
                                slot: c.slot,
                                gen: c.gen,
                            })
                        })
                        .map(|c| c.slot as usize),
                );
            }
        }
        if groups.len() > 1 {
            slots.sort_unstable();
            slots.dedup();
        }
        let enc = Encoded::for_receivers(msg, slots.len());
        self.queue_slots(&enc, &mut slots);
        self.slots = slots;
    }

    /// Deliver to this worker's clients bound to `uids`.
    pub fn deliver_uids(&mut self, uids: &[&str], msg: Payload<'_>) {
        let mut slots = std::mem::take(&mut self.slots);
        for u in uids {
            if let Some(set) = self.reg.uid(u).and_then(|m| m.get(&self.inc)) {
                slots.extend(set.iter().map(|c| c.slot as usize));
            }
        }
        if uids.len() > 1 {
            slots.sort_unstable();
            slots.dedup();
        }
        let enc = Encoded::for_receivers(msg, slots.len());
        self.queue_slots(&enc, &mut slots);
        self.slots = slots;
    }

    /// Deliver to every local gateway client except `exclude`.
    pub fn deliver_all(&mut self, exclude: &[ConnId], msg: Payload<'_>) {
        self.deliver_local_where(msg, |s, gen| {
            !exclude.contains(&ConnId {
                slot: s as u32,
                gen,
            })
        });
    }

    /// Deliver to the local gateway clients in share `part` of `parts` (by slot), so a
    /// periodic send to everyone can be spread over several turns.
    pub fn deliver_all_part(&mut self, part: usize, parts: usize, msg: Payload<'_>) {
        let parts = parts.max(1);
        self.deliver_local_where(msg, |s, _| s % parts == part % parts);
    }

    fn deliver_local_where(&mut self, msg: Payload<'_>, keep: impl Fn(usize, u32) -> bool) {
        let mut slots = std::mem::take(&mut self.slots);
        slots.extend(
            self.conns
                .iter()
                .filter(|(s, c)| c.framing != Framing::None && keep(*s, c.gen))
                .map(|(s, _)| s),
        );
        let enc = Encoded::for_receivers(msg, slots.len());
        self.queue_slots(&enc, &mut slots);
        self.slots = slots;
    }
}
