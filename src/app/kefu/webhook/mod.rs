//! Webhooks (docs/kefu-protocol.md "Webhooks"): a business registers endpoints (`api.rs`);
//! triggers queue its events durably in the store (`store/webhooks.rs`); each worker runs
//! one delivery thread ([`Courier`]) that takes due events, POSTs them signed
//! (`client.rs`; `https://` endpoints over rustls) and records the outcome. The event loop never waits on any of it: the
//! thread has its own store connection and sleeps only itself.

pub(super) mod api;
pub(crate) mod client;

use crate::store::db::Db;
use crate::store::{now_ms, webhooks, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often an idle delivery thread looks for due events.
const POLL: Duration = Duration::from_millis(200);
/// Events taken per round.
const BATCH: i64 = 16;

/// What the delivery threads need from the config.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Send to loopback/private/link-local addresses too (`webhook_allow_private`).
    pub allow_private: bool,
    /// Connect, write and read timeout of one delivery (`webhook_timeout`).
    pub timeout: Duration,
    /// Who `https://` endpoints' certificates must chain to (`tls/client.rs`).
    pub tls: Arc<rustls::ClientConfig>,
}

/// Handle on a worker's delivery thread; dropping it asks the thread to stop (it finishes
/// the delivery in progress; a row it leased and did not finish is retried after the lease).
pub(super) struct Courier {
    stop: Arc<AtomicBool>,
}

impl Courier {
    /// Start the thread on its own connection `conn`.
    pub(super) fn spawn(name: &str, conn: Db, policy: Policy) -> std::io::Result<Courier> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || run(&conn, &policy, &s))?;
        Ok(Courier { stop })
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(conn: &Db, policy: &Policy, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match round(conn, policy) {
            Ok(0) => std::thread::sleep(POLL),
            Ok(_) => {}
            Err(e) => {
                crate::warn!("kefu webhooks: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Deliver what is due; returns how many events were tried.
fn round(conn: &Db, policy: &Policy) -> Result<usize> {
    let due = webhooks::take_due(conn, now_ms(), BATCH)?;
    for d in &due {
        let sent = client::parse(&d.url).and_then(|url| {
            let addrs = client::resolve(&url, policy.allow_private)?;
            let delivery = client::Delivery {
                url: &url,
                secret: &d.secret,
                event: &d.event,
                id: d.id,
                ts: now_ms() / 1000,
                body: d.body.as_bytes(),
            };
            client::post(&delivery, &addrs, policy.timeout, &policy.tls)
        });
        match sent {
            Ok(_) => webhooks::delivered(conn, d.id)?,
            Err(e) => webhooks::failed(conn, d, &e.to_string(), now_ms())?,
        }
    }
    Ok(due.len())
}
