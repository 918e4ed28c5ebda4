//! Cluster: several kefu nodes, each with its own master and workers, sharing one Redis.
//!
//! A worker sees a worker of another node as one more bus peer: the master hands it a link
//! whose other end is this node's relay (`relay.rs`), so the gateway code (registry replica,
//! sends, commands, replay on link, forget on link loss) is the same as between local workers.
//! Relays move the frames between nodes as pub/sub batches (`wire.rs`), one channel per node,
//! so a send only wakes the nodes that hold receivers. Each node holds a lease in Redis (a key
//! with a TTL naming its epoch and workers, `engine.rs`); a node whose lease runs out is
//! dropped by the others, which forget its clients. Nothing here runs on a worker's loop:
//! the relay and the two Redis connections each have a thread in the master.

pub mod wire;

mod engine;
mod relay;

use crate::config::ClusterConfig;
pub use crate::ipc::{ClusterNode as NodeView, ClusterView as View};
use mio::{Poll, Registry, Token, Waker};
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The node an incarnation belongs to (its top byte; see [`node_inc`]).
pub(crate) fn node_of(inc: u64) -> u8 {
    crate::gateway::bus::hold::node_of(inc)
}

/// A worker incarnation carrying the node id in its top byte, so client ids (which start with
/// the incarnation) are unique cluster-wide and name their node.
pub(crate) fn node_inc(node: u8, local: u64) -> u64 {
    ((node as u64) << 56) | (local & ((1 << 56) - 1))
}

pub(crate) fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A link for a local worker to a remote worker: the master passes `fd` to the worker with
/// the `inc` of `remote`.
#[derive(Debug)]
pub(crate) struct Handover {
    /// The local worker.
    pub(crate) local: u64,
    /// The remote worker.
    pub(crate) remote: u64,
    /// The remote worker's slot on its node.
    pub(crate) remote_worker: u16,
    /// The worker's end of the link.
    pub(crate) fd: OwnedFd,
}

/// A node's lease, the value of its key in Redis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Lease {
    node: u8,
    name: String,
    epoch: u64,
    /// `(incarnation, slot)` of each of its workers.
    workers: Vec<(u64, u16)>,
    /// Master pid, for operators.
    pid: u32,
}

/// To the relay thread.
#[derive(Debug)]
enum Cmd {
    /// The local workers now.
    LocalWorkers(Vec<(u64, u16)>),
    /// A batch published to this node.
    Incoming(Vec<u8>),
    /// Every lease in Redis now.
    Membership(Vec<Lease>),
    /// The Redis connection was lost and is back: leases may be missing for a while.
    Reconnected,
    /// Our own lease had run out while we were connected (we were frozen or slow): the others
    /// may have dropped us, so resynchronise.
    LeaseLost,
    /// A clean stop: hand the batches read so far to the publisher, then pass it the `Leave`.
    Leave(Sender<()>),
}

/// To the publisher thread.
#[derive(Debug)]
enum PubCmd {
    /// Publish batches, each to its node (their sequence numbers are set there).
    Publish(Vec<(u8, Vec<u8>)>),
    /// The node is gone: drop what waits for it.
    DropNode(u8),
    /// Our workers, for our lease.
    Workers(Vec<(u64, u16)>),
    /// Our new epoch, for our lease.
    Epoch(u64),
    /// Publish what waits, delete our lease and stop (a clean stop: the others drop us at
    /// once); answers on the sender when done.
    Leave(Sender<()>),
}

/// The master's handle on the cluster threads.
#[derive(Debug)]
pub(crate) struct Cluster {
    to_relay: Sender<Cmd>,
    relay_waker: Arc<Waker>,
    to_pub: Sender<PubCmd>,
    /// Links to hand to local workers (the master is woken through its waker).
    pub(crate) handovers: Receiver<Handover>,
    view: Arc<Mutex<View>>,
}

impl Cluster {
    /// Start the relay and the Redis threads; `master` wakes the master's poll at `token`.
    pub(crate) fn start(
        cfg: &ClusterConfig,
        master: &Registry,
        token: Token,
    ) -> std::io::Result<Cluster> {
        let master_waker = Arc::new(Waker::new(master, token)?);
        let poll = Poll::new()?;
        let relay_waker = Arc::new(Waker::new(poll.registry(), relay::WAKER)?);
        let (to_relay, relay_rx) = mpsc::channel();
        let (to_pub, pub_rx) = mpsc::channel();
        let (to_master, handovers) = mpsc::channel();
        let name = if cfg.name.is_empty() {
            format!("node-{}", cfg.node)
        } else {
            cfg.name.clone()
        };
        let epoch = now_micros();
        let view = Arc::new(Mutex::new(View {
            node: cfg.node,
            name: name.clone(),
            epoch,
            ..View::default()
        }));
        let lease = Duration::from_millis(cfg.lease_ms);
        let r = relay::Relay::new(
            poll,
            relay_rx,
            cfg.node,
            epoch,
            lease,
            to_master,
            master_waker,
            to_pub.clone(),
            view.clone(),
        );
        std::thread::Builder::new()
            .name("cluster-relay".into())
            .spawn(move || r.run())?;
        let keys = engine::Keys::new(&cfg.prefix);
        let sub = engine::Subscriber {
            url: cfg.redis.clone(),
            channel: keys.channel(cfg.node),
            to_relay: to_relay.clone(),
            waker: relay_waker.clone(),
        };
        std::thread::Builder::new()
            .name("cluster-sub".into())
            .spawn(move || sub.run())?;
        let publisher = engine::Publisher::new(
            cfg.redis.clone(),
            keys,
            Lease {
                node: cfg.node,
                name,
                epoch,
                workers: Vec::new(),
                pid: std::process::id(),
            },
            lease,
            pub_rx,
            to_relay.clone(),
            relay_waker.clone(),
            view.clone(),
        );
        std::thread::Builder::new()
            .name("cluster-pub".into())
            .spawn(move || publisher.run())?;
        Ok(Cluster {
            to_relay,
            relay_waker,
            to_pub,
            handovers,
            view,
        })
    }

    /// The local workers changed (one spawned or reaped).
    pub(crate) fn set_workers(&self, ws: Vec<(u64, u16)>) {
        if self.to_relay.send(Cmd::LocalWorkers(ws)).is_ok() {
            let _ = self.relay_waker.wake();
        }
    }

    /// The cluster as this node sees it.
    pub(crate) fn view(&self) -> View {
        self.view.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// A clean stop: withdraw our lease so the others drop us now rather than at its end.
    pub(crate) fn leave(&self) {
        let (tx, rx) = mpsc::channel();
        // Through the relay, so the batches it has read go out first.
        let sent = match self.to_relay.send(Cmd::Leave(tx)) {
            Ok(()) => {
                let _ = self.relay_waker.wake();
                true
            }
            Err(mpsc::SendError(Cmd::Leave(tx))) => self.to_pub.send(PubCmd::Leave(tx)).is_ok(),
            Err(_) => false,
        };
        if sent {
            // Bounded: a Redis that does not answer only delays the exit by this much.
            let _ = rx.recv_timeout(Duration::from_secs(3));
        }
    }
}
