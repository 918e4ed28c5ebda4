//! `kefu key rotate`, and telling a running server of admin changes (agents removed or
//! re-passworded, a new signing key) so it closes the sessions they revoke at once.

use super::client;
use super::ConfigArgs;
use crate::app::kefu::auth::Secret;
use crate::config::Config;
use crate::ipc::{AdminEvent, CliReply, CliRequest};
use crate::master::daemon;
use clap::{Args, Subcommand};
use std::time::Duration;

/// How long the CLI waits for the master to pass an admin change on.
const NOTIFY_WAIT: Duration = Duration::from_secs(5);

/// `kefu key`.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: KeyCmd,
}

/// Signing key subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum KeyCmd {
    /// Replace the token signing key (`<data_dir>/secret.key`, or the cluster's in PostgreSQL
    /// with `kefu.database`): every agent and visitor token stops working, and the running
    /// servers close every logged-in session (the other nodes of a cluster within seconds).
    Rotate {
        /// Configuration (data_dir, and pid_file to find a running server).
        #[command(flatten)]
        cfg: ConfigArgs,
    },
}

/// Whether the running server (if any) heard of the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Told {
    /// Every worker was sent it.
    Yes,
    /// No server runs for this pid file: nothing to tell.
    NotRunning,
    /// A server runs but could not be reached (reason printed).
    Failed,
}

/// Tell the master of `cfg`'s instance about `event`, if one runs.
pub(crate) fn notify(cfg: &Config, event: AdminEvent) -> Told {
    if daemon::running_master(&cfg.pid_file, &cfg.lock_file()).is_none() {
        return Told::NotRunning;
    }
    let req = CliRequest::Admin { event };
    match client::request(&cfg.control_socket(), &req, Some(NOTIFY_WAIT)) {
        Ok(CliReply::Done { .. }) => Told::Yes,
        Ok(other) => {
            eprintln!("kefu: warning: the server answered {other:?}");
            Told::Failed
        }
        Err(e) => {
            eprintln!("kefu: warning: could not tell the running server: {e}");
            Told::Failed
        }
    }
}

/// `kefu agent remove|passwd` done in the store: close the agent's live sessions.
pub(crate) fn agent_revoked(cfg: &Config, bid: &str, agent_id: &str) {
    let event = AdminEvent::AgentRevoked {
        bid: bid.to_string(),
        agent_id: agent_id.to_string(),
    };
    match notify(cfg, event) {
        Told::Yes => println!("its live sessions were closed"),
        // Tokens are checked against the store at every use, and the server's sweep closes
        // sessions of changed agents within seconds: the change holds either way.
        Told::NotRunning | Told::Failed => {}
    }
}

/// Run `kefu key ...`; returns the exit code.
pub(crate) fn run_key(a: &KeyArgs) -> Result<i32, Box<dyn std::error::Error>> {
    match &a.cmd {
        KeyCmd::Rotate { cfg } => {
            let cfg = cfg.load()?;
            if cfg.kefu.database.is_some() {
                let db =
                    crate::store::open_target(crate::store::Target::of(&cfg.kefu, &cfg.data_dir))?;
                Secret::rotate_in(&db)?;
            } else {
                Secret::rotate(&cfg.data_dir)?;
            }
            println!("signing key replaced: every token is void");
            match notify(&cfg, AdminEvent::KeyRotated) {
                Told::Yes => println!("the running server reloaded it and closed every session"),
                Told::NotRunning => {}
                Told::Failed => {
                    eprintln!("kefu: run `kefu reload` so the workers use the new key");
                    return Ok(1);
                }
            }
        }
    }
    Ok(0)
}
