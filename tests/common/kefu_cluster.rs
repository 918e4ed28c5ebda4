//! The kefu app as a cluster on PostgreSQL: nodes sharing one database and one Redis of the
//! test's own, each with a data directory of its own, and a visitor's first message.

use super::cluster::{redis_available, Redis};
use super::kefu_app::{first_message, Kefu};
use super::pg::{pg_available, Pg};
use super::ws::Ws;
use super::Instance;
use serde_json::Value;

/// Whether Redis and PostgreSQL are installed (CI: a missing one fails the test).
pub fn available() -> bool {
    redis_available() && pg_available()
}

/// `[kefu]` settings of node `id`: the shared store, then the cluster.
pub fn node_toml(pg: &Pg, redis: &Redis, id: u8) -> String {
    format!(
        "database = \"{}\"\nagent_away_grace = 0\n[cluster]\nnode = {id}\nredis = \"{}\"\nlease_ms = 1500\n",
        pg.url(),
        redis.url()
    )
}

/// A further node with a data directory of its own. Nothing is copied from the first node:
/// the token signing key and the uploads are in PostgreSQL.
pub fn node(pg: &Pg, redis: &Redis, id: u8, workers: usize) -> Kefu {
    node_keyed(pg, redis, id, workers, None)
}

/// [`node`], its data directory holding `own_key` as `secret.key` beforehand (a node that
/// ran alone before it joined, say).
pub fn node_keyed(pg: &Pg, redis: &Redis, id: u8, workers: usize, own_key: Option<&str>) -> Kefu {
    let inst = Instance::new("kefu", workers, &["websocket"])
        .config(&format!("[kefu]\n{}", node_toml(pg, redis, id)))
        .with_data_dir();
    if let Some(k) = own_key {
        let dir = inst.data_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret.key"), k).unwrap();
    }
    Kefu {
        inst: inst.start(),
        pg: None,
    }
}

/// A visitor's first message; returns (ws, token, conv, its fate: `assigned` or `waiting`).
pub fn open_conv(k: &Kefu, bid: &str, text: &str) -> (Ws, String, i64, Value) {
    let (mut v, l) = k.visitor(bid);
    let token = l["token"].as_str().unwrap().to_string();
    let (conv, fate) = first_message(&mut v, text);
    (v, token, conv, fate)
}
