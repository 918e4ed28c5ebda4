//! [`Ctx`]: the handle every app callback gets. Its gateway calls work from any worker for any
//! client: queries read the local replica of the registry (no waiting on other workers); sends
//! go straight to local clients and, over the bus, only to workers that hold receivers;
//! changes to a client run on its owner (here, or forwarded as a command).

use super::TimerId;
use crate::connection::ConnState;
use crate::gateway::bus::wire::{BusMsg, Kind};
use crate::gateway::client_id::{ClientId, ConnId};
use crate::gateway::registry::{Members, Registry};
use crate::gateway::{check_group, check_uid, ApiError, MAX_GROUPS_PER_CLIENT};
use crate::protocol::http::response::Response;
use crate::protocol::Payload;
use crate::state::{CloseHow, Core, Encoded};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The excluded clients that live on worker `inc`, as that worker's connections.
fn excludes_on(exclude: &[ClientId], inc: u64) -> Vec<ConnId> {
    exclude
        .iter()
        .filter(|c| c.inc == inc)
        .map(|c| c.conn)
        .collect()
}

/// The handle an app gets on every event.
#[derive(Debug)]
pub struct Ctx<'a> {
    core: &'a mut Core,
}

impl<'a> Ctx<'a> {
    /// Wrap the worker's state for one callback (the worker loop does this, apps never).
    pub(crate) fn new(core: &'a mut Core) -> Ctx<'a> {
        Ctx { core }
    }

    /// The loop time of the current turn (cheaper than `Instant::now`, and the same for every
    /// event of the turn).
    pub fn now(&self) -> Instant {
        self.core.now
    }

    /// Peer address of a local client.
    pub fn remote_addr(&self, c: ClientId) -> Option<std::net::SocketAddr> {
        let id = self.core.local(c)?;
        self.core.get(id).map(|c| c.remote)
    }

    /// Start a timer; `on_timer` gets its id and `tag`.
    pub fn add_timer(&mut self, after: Duration, repeat: bool, tag: u64) -> TimerId {
        TimerId(self.core.timers.add_app(self.core.now, after, repeat, tag))
    }

    /// Cancel a timer.
    pub fn del_timer(&mut self, t: TimerId) -> bool {
        self.core.timers.cancel_app(t.0)
    }

    /// Answer an HTTP request the app left [`Pending`](super::HttpOutcome::Pending);
    /// the connection closes after the answer. False if the client went away meanwhile.
    pub fn respond_http(&mut self, conn: ClientId, resp: &Response) -> bool {
        let Some(id) = self.core.local(conn) else {
            return false;
        };
        match self.core.get_mut(id) {
            Some(c) if c.input.awaiting_app() => c.input.app_answered(),
            _ => return false,
        }
        let mut out = Vec::new();
        resp.write_to(&mut out, false);
        self.core.queue_raw(id.index(), &out, &[]);
        self.core.request_close(id, CloseHow::Graceful(1000));
        true
    }

    /// A handle that wakes this worker's loop from another thread; the app's `on_wake` runs then.
    pub fn waker(&self) -> std::sync::Arc<mio::Waker> {
        self.core.waker.clone()
    }

    /// This worker's slot number.
    pub fn worker_id(&self) -> usize {
        self.core.worker_id
    }

    /// Other workers holding members of any of these groups or uids, each once.
    fn holders<'r>(&self, members: impl Iterator<Item = &'r Members>) -> Vec<u64> {
        let mut incs: Vec<u64> = members
            .flat_map(|m| m.keys().copied())
            .filter(|&i| i != self.core.inc)
            .collect();
        incs.sort_unstable();
        incs.dedup();
        incs
    }

    /// This worker's incarnation (the first part of its client ids).
    pub fn incarnation(&self) -> u64 {
        self.core.inc
    }

    /// The cluster-wide id of a local connection (what the events receive).
    pub fn client_id_of(&self, id: ConnId) -> ClientId {
        self.core.client_id(id)
    }

    /// A handle on the worker's poll, for the app's own sockets (register them under
    /// [`crate::api::io_token`]; their events come to [`crate::api::App::on_io`]).
    pub fn io_registry(&self) -> std::io::Result<mio::Registry> {
        match &self.core.registry {
            Some(r) => r.try_clone(),
            None => Err(std::io::Error::other("no event loop")),
        }
    }

    /// The worker slot of incarnation `inc` on this node (`None`: not a worker of this node).
    pub fn worker_of(&self, inc: u64) -> Option<usize> {
        if inc == self.core.inc {
            return Some(self.core.worker_id);
        }
        let mut links = self.core.bus.links.iter();
        links.find(|(_, l)| l.inc == inc).map(|(_, l)| l.worker_id)
    }

    /// The incarnation of this node's worker `slot` (this worker or one linked to it).
    pub fn worker_inc(&self, slot: usize) -> Option<u64> {
        if slot == self.core.worker_id {
            return Some(self.core.inc);
        }
        let mut links = self.core.bus.links.iter();
        links.find(|(_, l)| l.worker_id == slot).map(|(_, l)| l.inc)
    }

    /// The online clients of worker incarnation `inc`.
    pub fn clients_of_worker(&self, inc: u64) -> impl Iterator<Item = ClientId> + '_ {
        self.core.reg.clients_of_worker(inc)
    }

    /// Send to one client anywhere; false if it is not online.
    pub fn send_to_client(&mut self, c: ClientId, msg: Payload<'_>) -> bool {
        if let Some(id) = self.core.local(c) {
            if !self.core.get(id).is_some_and(|x| x.accepts_messages()) {
                return false;
            }
            Encoded::new(msg).queue_id(self.core, id);
            return true;
        }
        if !self.core.reg.is_online(c) {
            return false;
        }
        let (kind, payload) = Kind::split(msg);
        self.core.bus.send(
            c.inc,
            &BusMsg::ToClient {
                kind,
                key: c.conn,
                payload,
            },
        )
    }

    /// Send to each listed client (GatewayWorker's send_to_all with a client list).
    pub fn send_to_clients(&mut self, clients: &[ClientId], msg: Payload<'_>) {
        let mut by_worker: BTreeMap<u64, Vec<ConnId>> = BTreeMap::new();
        let enc = Encoded::for_receivers(msg, clients.len());
        for &c in clients {
            match self.core.local(c) {
                Some(id) => enc.queue_id(self.core, id),
                None => by_worker.entry(c.inc).or_default().push(c.conn),
            }
        }
        let (kind, payload) = Kind::split(msg);
        for (inc, keys) in by_worker {
            self.core.bus.send(
                inc,
                &BusMsg::ToClients {
                    kind,
                    keys,
                    payload,
                },
            );
        }
    }

    /// Queue `bytes` unframed on each listed client of this worker (others are skipped): for
    /// a sender that built the protocol's frame itself (GatewayWorker's raw sends). TLS still
    /// applies; no WebSocket or line framing is added.
    pub fn send_raw_to_local(&mut self, clients: &[ClientId], bytes: &[u8]) {
        for &c in clients {
            let Some(id) = self.core.local(c) else {
                continue;
            };
            if self.core.get(id).is_some_and(|x| x.accepts_messages()) {
                self.core.queue_raw(id.index(), bytes, &[]);
            }
        }
    }

    /// Send to every client in the cluster except `exclude`.
    pub fn send_to_all(&mut self, msg: Payload<'_>, exclude: &[ClientId]) {
        let local_ex: Vec<ConnId> = exclude.iter().filter_map(|c| self.core.local(*c)).collect();
        self.core.deliver_all(&local_ex, msg);
        let (kind, payload) = Kind::split(msg);
        let peers: Vec<u64> = self
            .core
            .reg
            .worker_incs()
            .filter(|&i| i != self.core.inc)
            .collect();
        for inc in peers {
            self.core.bus.send(
                inc,
                &BusMsg::ToAll {
                    kind,
                    exclude: excludes_on(exclude, inc),
                    payload,
                },
            );
        }
    }

    /// Send to every client bound to any of `uids`.
    pub fn send_to_uid(&mut self, uids: &[&str], msg: Payload<'_>) {
        self.core.deliver_uids(uids, msg);
        let incs = self.holders(uids.iter().filter_map(|u| self.core.reg.uid(u)));
        if incs.is_empty() {
            return;
        }
        let (kind, payload) = Kind::split(msg);
        // The same message for every holder: build it once.
        let m = BusMsg::ToUids {
            kind,
            uids: uids.to_vec(),
            payload,
        };
        for inc in incs {
            self.core.bus.send(inc, &m);
        }
    }

    /// Send to every member of any of `groups` (once each), except `exclude`.
    pub fn send_to_group(&mut self, groups: &[&str], msg: Payload<'_>, exclude: &[ClientId]) {
        let local_ex: Vec<ConnId> = exclude.iter().filter_map(|c| self.core.local(*c)).collect();
        self.core.deliver_groups(groups, &local_ex, msg);
        let incs = self.holders(groups.iter().filter_map(|g| self.core.reg.group(g)));
        if incs.is_empty() {
            return;
        }
        let (kind, payload) = Kind::split(msg);
        for inc in incs {
            self.core.bus.send(
                inc,
                &BusMsg::ToGroups {
                    kind,
                    groups: groups.to_vec(),
                    exclude: excludes_on(exclude, inc),
                    payload,
                },
            );
        }
    }

    /// Run an owner-side change here or forward it to the owner (then mirror it locally so the
    /// caller reads its own write; the owner's replicated change settles any race).
    fn owner_op(
        &mut self,
        c: ClientId,
        local: impl FnOnce(&mut Core, ConnId) -> Result<(), ApiError>,
        cmd: BusMsg<'_>,
        mirror: impl FnOnce(&mut Registry),
    ) -> Result<(), ApiError> {
        if let Some(id) = self.core.local(c) {
            return local(self.core, id);
        }
        if !self.core.reg.is_online(c) || !self.core.bus.send(c.inc, &cmd) {
            return Err(ApiError::NotOnline);
        }
        mirror(&mut self.core.reg);
        Ok(())
    }

    /// Add a client to a group.
    pub fn join_group(&mut self, c: ClientId, group: &str) -> Result<(), ApiError> {
        check_group(group)?;
        // Checked here too for remote clients: the owner would refuse the command, and the
        // local mirror below would then stay wrong until the client left.
        if let Some(info) = self.core.reg.get(c) {
            if info.groups.len() >= MAX_GROUPS_PER_CLIENT && !info.groups.iter().any(|g| g == group)
            {
                return Err(ApiError::TooManyGroups);
            }
        }
        self.owner_op(
            c,
            |core, id| core.local_join(id, group),
            BusMsg::CmdJoin(c.conn, group),
            |r| r.join(c, group),
        )
    }

    /// Remove a client from a group.
    pub fn leave_group(&mut self, c: ClientId, group: &str) -> Result<(), ApiError> {
        self.owner_op(
            c,
            |core, id| core.local_leave(id, group),
            BusMsg::CmdLeave(c.conn, group),
            |r| r.leave(c, group),
        )
    }

    /// Dissolve a group everywhere.
    pub fn ungroup(&mut self, group: &str) -> Result<(), ApiError> {
        check_group(group)?;
        self.core.local_ungroup(group);
        self.core.bus.broadcast(&BusMsg::Ungroup(group));
        // Read-your-writes on this worker: forget the remote members now; their owners'
        // Leave messages, when they come, are no-ops.
        self.core.reg.ungroup(group);
        Ok(())
    }

    /// Bind a uid to a client (replacing its previous uid).
    pub fn bind_uid(&mut self, c: ClientId, uid: &str) -> Result<(), ApiError> {
        check_uid(uid)?;
        self.owner_op(
            c,
            |core, id| core.local_bind(id, uid),
            BusMsg::CmdBind(c.conn, uid),
            |r| r.bind(c, uid),
        )
    }

    /// Remove a client's uid.
    pub fn unbind_uid(&mut self, c: ClientId) -> Result<(), ApiError> {
        self.owner_op(
            c,
            |core, id| core.local_unbind(id),
            BusMsg::CmdUnbind(c.conn),
            |r| r.unbind(c),
        )
    }

    /// Replace a client's session.
    pub fn set_session(&mut self, c: ClientId, s: Map<String, Value>) -> Result<(), ApiError> {
        self.session_op(c, s, false)
    }

    /// Merge into a client's session (nested objects merge key by key).
    pub fn update_session(&mut self, c: ClientId, s: Map<String, Value>) -> Result<(), ApiError> {
        self.session_op(c, s, true)
    }

    fn session_op(
        &mut self,
        c: ClientId,
        s: Map<String, Value>,
        merge: bool,
    ) -> Result<(), ApiError> {
        if let Some(id) = self.core.local(c) {
            return self.core.local_session(id, s, merge);
        }
        // Checked on the result against our replica, as the owner will: the owner refuses
        // an oversized result, and our mirror must not keep what the owner refused.
        let bytes = serde_json::to_vec(&s).unwrap_or_default();
        let (next, _) = self.core.reg.next_session(c, s, merge)?;
        let cmd = if merge {
            BusMsg::CmdUpdateSession(c.conn, &bytes)
        } else {
            BusMsg::CmdSetSession(c.conn, &bytes)
        };
        self.owner_op(c, |_, _| Ok(()), cmd, |r| r.set_session(c, next))
    }

    /// A client's session (`None` if offline).
    pub fn get_session(&self, c: ClientId) -> Option<&Map<String, Value>> {
        self.core.reg.get(c).map(|i| &i.session)
    }

    /// Close a client after an optional last message.
    pub fn close_client(&mut self, c: ClientId, last: Option<Payload<'_>>) -> Result<(), ApiError> {
        if let Some(id) = self.core.local(c) {
            if self.core.get(id).is_none() {
                return Err(ApiError::NotOnline);
            }
            if let Some(m) = last {
                Encoded::new(m).queue_id(self.core, id);
            }
            self.core.request_close(id, CloseHow::Graceful(1000));
            return Ok(());
        }
        let last = last.map(Kind::split);
        self.owner_op(c, |_, _| Ok(()), BusMsg::CmdClose(c.conn, last), |_| {})
    }

    /// Drop a client now.
    pub fn destroy_client(&mut self, c: ClientId) -> Result<(), ApiError> {
        if let Some(id) = self.core.local(c) {
            if self.core.get(id).is_none() {
                return Err(ApiError::NotOnline);
            }
            self.core.request_close(id, CloseHow::Now);
            return Ok(());
        }
        self.owner_op(c, |_, _| Ok(()), BusMsg::CmdDestroy(c.conn), |_| {})
    }

    /// Whether a client is online.
    pub fn is_online(&self, c: ClientId) -> bool {
        self.core.reg.is_online(c)
    }

    /// Whether any client is bound to `uid`.
    pub fn is_uid_online(&self, uid: &str) -> bool {
        self.core.reg.uid(uid).is_some()
    }

    /// Clients bound to `uid`.
    pub fn get_client_id_by_uid(&self, uid: &str) -> Vec<ClientId> {
        self.core.reg.uid_clients(uid)
    }

    /// The uid of a client.
    pub fn get_uid_by_client_id(&self, c: ClientId) -> Option<&str> {
        self.core.reg.get(c)?.uid.as_deref()
    }

    /// Number of clients in the cluster.
    pub fn get_all_client_id_count(&self) -> usize {
        self.core.reg.client_count()
    }

    /// Every client in the cluster.
    pub fn get_all_client_id_list(&self) -> Vec<ClientId> {
        self.core.reg.client_list()
    }

    /// Number of members of a group.
    pub fn get_client_id_count_by_group(&self, group: &str) -> usize {
        self.core.reg.group_count(group)
    }

    /// Members of a group.
    pub fn get_client_id_list_by_group(&self, group: &str) -> Vec<ClientId> {
        self.core.reg.group_list(group)
    }

    /// Every bound uid.
    pub fn get_all_uid_list(&self) -> Vec<String> {
        self.core.reg.uid_list()
    }

    /// Number of bound uids.
    pub fn get_all_uid_count(&self) -> usize {
        self.core.reg.uid_list().len()
    }

    /// Uids bound to members of a group.
    pub fn get_uid_list_by_group(&self, group: &str) -> Vec<String> {
        self.core.reg.uids_in_group(group)
    }

    /// Number of distinct uids in a group.
    pub fn get_uid_count_by_group(&self, group: &str) -> usize {
        self.core.reg.uids_in_group(group).len()
    }

    /// Every group id.
    pub fn get_all_group_id_list(&self) -> Vec<String> {
        self.core.reg.group_ids()
    }

    /// Every client's session.
    pub fn get_all_client_sessions(&self) -> Vec<(ClientId, &Map<String, Value>)> {
        let mut v: Vec<_> = self.core.reg.iter().map(|(c, i)| (c, &i.session)).collect();
        v.sort_by_key(|(c, _)| *c);
        v
    }

    /// Sessions of a group's members.
    pub fn get_client_sessions_by_group(
        &self,
        group: &str,
    ) -> Vec<(ClientId, &Map<String, Value>)> {
        self.core
            .reg
            .group_list(group)
            .into_iter()
            .filter_map(|c| Some((c, &self.core.reg.get(c)?.session)))
            .collect()
    }

    /// What the registry knows of a client (uid, groups, session), if anything.
    pub fn client_info(&self, c: ClientId) -> Option<&crate::gateway::registry::ClientInfo> {
        self.core.reg.get(c)
    }

    /// Whether a client is in a group.
    pub fn is_in_group(&self, c: ClientId, group: &str) -> bool {
        self.core
            .reg
            .get(c)
            .is_some_and(|i| i.groups.iter().any(|g| g == group))
    }

    /// Send to this worker's own members of `groups` only (no bus traffic): for what every
    /// worker announces to its own clients, such as a peer's lost clients.
    pub fn send_to_group_local(&mut self, groups: &[&str], msg: Payload<'_>) {
        self.core.deliver_groups(groups, &[], msg);
    }

    /// Send to the share `part` of `parts` of this worker's own clients (by slot), so a
    /// periodic send to everyone is spread over several turns and never crosses the bus.
    pub fn send_to_all_local_part(&mut self, part: usize, parts: usize, msg: Payload<'_>) {
        self.core.deliver_all_part(part, parts, msg);
    }

    /// The app has authenticated this local client (a login succeeded): it is no longer
    /// closed at the login deadline ([`super::Transport::login_timeout`]).
    pub fn authenticated(&mut self, c: ClientId) {
        if let Some(id) = self.core.local(c) {
            if let Some(conn) = self.core.get_mut(id).filter(|c| c.state == ConnState::Open) {
                conn.deadline = None;
            }
        }
    }
}
