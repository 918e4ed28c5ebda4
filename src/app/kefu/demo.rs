//! First start: with an empty store, `kefu start --app kefu` creates a demo business and one
//! agent with a random password, and prints how to reach the pages and sign in. The password
//! is shown this once (never a fixed default); `kefu agent passwd` replaces it.

use super::auth;
use crate::config::{Config, Scheme};
use crate::store::{self, tenancy};

/// Business id of the demo (the index page links to `/chat/demo`).
pub(crate) const DEMO_BID: &str = "demo";
/// Agent id of the demo agent.
pub(crate) const DEMO_AGENT: &str = "admin";

/// Open (create, tighten, migrate) the store before the server starts, so what that reports
/// (files readable by others, a store that cannot be opened) reaches the terminal of
/// `kefu start` rather than only a daemon's log. The demo itself waits for a good start.
pub(crate) fn prepare(cfg: &Config) -> Result<(), Box<dyn std::error::Error>> {
    if cfg.app == "kefu" {
        store::open_target(store::Target::of(&cfg.kefu, &cfg.data_dir))?;
    }
    Ok(())
}

/// Create the demo tenant if the store has no business yet; returns the text to print, or
/// `None` when there was nothing to do (another app, or a store already in use).
pub(crate) fn first_run(cfg: &Config) -> Result<Option<String>, Box<dyn std::error::Error>> {
    if cfg.app != "kefu" {
        return Ok(None);
    }
    let conn = store::open_target(store::Target::of(&cfg.kefu, &cfg.data_dir))?;
    if !tenancy::business_list(&conn)?.is_empty() {
        return Ok(None);
    }
    let password = auth::random_password();
    let hash = auth::hash_password(&password)?;
    tenancy::business_add(&conn, DEMO_BID, "Demo shop")?;
    // The first agent is the business's admin: it can add the others from the console.
    tenancy::agent_add_as(
        &conn,
        DEMO_BID,
        DEMO_AGENT,
        "Admin",
        &hash,
        None,
        tenancy::AgentRole::Admin,
    )?;
    let base = cfg
        .listen
        .iter()
        .find(|l| matches!(l.scheme, Scheme::Http | Scheme::Websocket))
        .map(|l| {
            let host = if l.addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else if l.addr.is_ipv6() {
                format!("[{}]", l.addr.ip())
            } else {
                l.addr.ip().to_string()
            };
            format!("http://{host}:{}", l.addr.port())
        })
        .unwrap_or_else(|| "http://HOST:PORT".into());
    Ok(Some(format!(
        "kefu: first start with an empty data dir ({dir}): created the demo business \"{DEMO_BID}\".\n\
         \x20 visitor page:  {base}/chat/{DEMO_BID}\n\
         \x20 agent console: {base}/console\n\
         \x20 one-time login: business {DEMO_BID}, agent {DEMO_AGENT}, password {password}\n\
         \x20 (shown only now; change it with `kefu agent passwd --bid {DEMO_BID} --id {DEMO_AGENT}`)\n",
        dir = cfg.data_dir.display()
    )))
}
