//! Applying a message that arrived from another worker: one exhaustive match from message to
//! state change.

use super::{CloseHow, Core, Encoded};
use crate::gateway::bus::wire::BusMsg;
use crate::gateway::client_id::{ClientId, ConnId};
use crate::gateway::MAX_SESSION;
use serde_json::{Map, Value};

fn remote(from: u64, k: ConnId) -> ClientId {
    ClientId::new(from, k)
}

fn parse_map(b: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(b) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Apply `m`, sent by worker `from`. What a close command needs from the app is queued in
/// `core.pending_close` like any other close.
pub(crate) fn apply(core: &mut Core, from: u64, m: BusMsg<'_>) {
    match m {
        BusMsg::Hello { .. } => {}
        BusMsg::Up(k) => core.reg.add(remote(from, k)),
        BusMsg::Down(k) => {
            core.reg.remove(remote(from, k));
        }
        BusMsg::Bind(k, u) => core.reg.bind(remote(from, k), u),
        BusMsg::Unbind(k) => core.reg.unbind(remote(from, k)),
        BusMsg::Join(k, g) => core.reg.join(remote(from, k), g),
        BusMsg::Leave(k, g) => core.reg.leave(remote(from, k), g),
        BusMsg::Session(k, b) => {
            // The owner checked the cap; a peer that did not is not copied into our replica.
            if b.len() > MAX_SESSION {
                return;
            }
            if let Some(s) = parse_map(b) {
                core.reg.set_session(remote(from, k), s);
            }
        }
        BusMsg::ToClient { kind, key, payload } => {
            Encoded::new(kind.payload(payload)).queue_id(core, key);
        }
        BusMsg::ToClients {
            kind,
            keys,
            payload,
        } => {
            let enc = Encoded::for_receivers(kind.payload(payload), keys.len());
            for k in keys {
                enc.queue_id(core, k);
            }
        }
        BusMsg::ToGroups {
            kind,
            groups,
            exclude,
            payload,
        } => {
            core.deliver_groups(&groups, &exclude, kind.payload(payload));
        }
        BusMsg::ToUids {
            kind,
            uids,
            payload,
        } => core.deliver_uids(&uids, kind.payload(payload)),
        BusMsg::ToAll {
            kind,
            exclude,
            payload,
        } => {
            core.deliver_all(&exclude, kind.payload(payload));
        }
        // Commands for our own clients: refused ones (client gone, bad name) are dropped, as a
        // GatewayWorker gateway drops commands for unknown connections.
        BusMsg::CmdJoin(k, g) => {
            let _ = core.local_join(k, g);
        }
        BusMsg::CmdLeave(k, g) => {
            let _ = core.local_leave(k, g);
        }
        BusMsg::CmdBind(k, u) => {
            let _ = core.local_bind(k, u);
        }
        BusMsg::CmdUnbind(k) => {
            let _ = core.local_unbind(k);
        }
        BusMsg::CmdSetSession(k, b) => {
            if let Some(s) = parse_map(b) {
                let _ = core.local_session(k, s, false);
            }
        }
        BusMsg::CmdUpdateSession(k, b) => {
            if let Some(s) = parse_map(b) {
                let _ = core.local_session(k, s, true);
            }
        }
        BusMsg::CmdClose(k, last) => {
            if let Some((kind, b)) = last {
                Encoded::new(kind.payload(b)).queue_id(core, k);
            }
            core.request_close(k, CloseHow::Graceful(1000));
        }
        BusMsg::CmdDestroy(k) => core.request_close(k, CloseHow::Now),
        BusMsg::Ungroup(g) => core.local_ungroup(g),
    }
}
