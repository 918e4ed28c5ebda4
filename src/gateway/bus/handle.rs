//! Applying a message that arrived from another worker.

use super::wire::{BusMsg, Key};
use crate::gateway::client_id::ClientId;
use crate::gateway::local::{conn, join};
use crate::worker::ctx::{CloseHow, ConnId, Core, Encoded};
use serde_json::{Map, Value};

fn remote(from: u64, k: Key) -> ClientId {
    ClientId {
        inc: from,
        slot: k.slot,
        gen: k.gen,
    }
}

fn parse_map(b: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(b) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Apply `m`, sent by worker `from`. What a close command needs from the app is queued in
/// `core.pending_close` like any other close.
pub fn apply(core: &mut Core, from: u64, m: BusMsg<'_>) {
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
            if let Some(s) = parse_map(b) {
                core.reg.set_session(remote(from, k), s);
            }
        }
        BusMsg::ToClient { kind, key, payload } => {
            Encoded::new(join(kind, payload)).queue_id(core, conn(key));
        }
        BusMsg::ToClients {
            kind,
            keys,
            payload,
        } => {
            let enc = Encoded::for_receivers(join(kind, payload), keys.len());
            for k in keys {
                enc.queue_id(core, conn(k));
            }
        }
        BusMsg::ToGroups {
            kind,
            groups,
            exclude,
            payload,
        } => {
            let ex: Vec<ConnId> = exclude.into_iter().map(conn).collect();
            core.deliver_groups(&groups, &ex, join(kind, payload));
        }
        BusMsg::ToUids {
            kind,
            uids,
            payload,
        } => core.deliver_uids(&uids, join(kind, payload)),
        BusMsg::ToAll {
            kind,
            exclude,
            payload,
        } => {
            let ex: Vec<ConnId> = exclude.into_iter().map(conn).collect();
            core.deliver_all(&ex, join(kind, payload));
        }
        // Commands for our own clients: refused ones (client gone, bad name) are dropped, as a
        // GatewayWorker gateway drops commands for unknown connections.
        BusMsg::CmdJoin(k, g) => {
            let _ = core.local_join(conn(k), g);
        }
        BusMsg::CmdLeave(k, g) => {
            let _ = core.local_leave(conn(k), g);
        }
        BusMsg::CmdBind(k, u) => {
            let _ = core.local_bind(conn(k), u);
        }
        BusMsg::CmdUnbind(k) => {
            let _ = core.local_unbind(conn(k));
        }
        BusMsg::CmdSetSession(k, b) => {
            if let Some(s) = parse_map(b) {
                let _ = core.local_session(conn(k), s, false);
            }
        }
        BusMsg::CmdUpdateSession(k, b) => {
            if let Some(s) = parse_map(b) {
                let _ = core.local_session(conn(k), s, true);
            }
        }
        BusMsg::CmdClose(k, last) => {
            let id = conn(k);
            if let Some((kind, b)) = last {
                Encoded::new(join(kind, b)).queue_id(core, id);
            }
            core.request_close(id, CloseHow::Graceful(1000));
        }
        BusMsg::CmdDestroy(k) => core.request_close(conn(k), CloseHow::Now),
        BusMsg::Ungroup(g) => core.local_ungroup(g),
    }
}
