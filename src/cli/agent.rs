//! `kefu agent ...` and `kefu business ...`: manage the kefu app's tenants and agents in the
//! store directly (works whether or not the server runs: SQLite serializes the writers).

use super::key;
use super::password::{self, PasswordArgs};
use super::ConfigArgs;
use crate::app::kefu::auth;
use crate::store::{self, tenancy, StoreError};
use clap::{Args, Subcommand};
use rusqlite::Connection;

/// `kefu agent`.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: AgentCmd,
}

/// Agent subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum AgentCmd {
    /// Add an agent (creating the business if needed); the password is prompted for (no echo),
    /// read from stdin when it is not a terminal, or generated with --random.
    Add {
        /// Business id.
        #[arg(long)]
        bid: String,
        /// Agent id (the seed's customer_id).
        #[arg(long)]
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Where the password comes from.
        #[command(flatten)]
        pw: PasswordArgs,
        /// Most concurrent conversations (default: [kefu] max_per_agent).
        #[arg(long)]
        max: Option<i64>,
        /// Configuration (for data_dir).
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// List agents.
    List {
        /// Only this business.
        #[arg(long)]
        bid: Option<String>,
        /// Configuration (for data_dir).
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Remove an agent (its active conversations go back to the queue, its tokens stop
    /// working and a running server closes its sessions).
    Remove {
        /// Business id.
        #[arg(long)]
        bid: String,
        /// Agent id.
        #[arg(long)]
        id: String,
        /// Configuration (for data_dir).
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Set a new password (prompted, from stdin, or --random); existing tokens stop working
    /// and a running server closes the agent's sessions.
    Passwd {
        /// Business id.
        #[arg(long)]
        bid: String,
        /// Agent id.
        #[arg(long)]
        id: String,
        /// Where the new password comes from.
        #[command(flatten)]
        pw: PasswordArgs,
        /// Configuration (for data_dir).
        #[command(flatten)]
        cfg: ConfigArgs,
    },
}

/// `kefu business`.
#[derive(Debug, Clone, Args)]
pub struct BusinessArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: BusinessCmd,
}

/// Business subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum BusinessCmd {
    /// Add a business; prints its secret (for integrator-signed visitor identities).
    Add {
        /// Business id.
        #[arg(long)]
        bid: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Configuration (for data_dir).
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// List businesses.
    List {
        /// Configuration (for data_dir).
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Print (or with --rotate, replace) a business's secret.
    Secret {
        /// Business id.
        #[arg(long)]
        bid: String,
        /// Make a new secret (old signatures stop working).
        #[arg(long)]
        rotate: bool,
        /// Configuration (for data_dir).
        #[command(flatten)]
        cfg: ConfigArgs,
    },
}

fn open(cfg: &ConfigArgs) -> Result<Connection, Box<dyn std::error::Error>> {
    let c = cfg.load()?;
    Ok(store::open(&c.data_dir, c.kefu.synchronous)?)
}

fn explain(e: StoreError) -> Box<dyn std::error::Error> {
    match e {
        StoreError::NotFound => "no such agent or business".into(),
        e => Box::new(e),
    }
}

/// Run `kefu agent ...`; returns the exit code.
pub(crate) fn run_agent(a: &AgentArgs) -> Result<i32, Box<dyn std::error::Error>> {
    match &a.cmd {
        AgentCmd::Add {
            bid,
            id,
            name,
            pw,
            max,
            cfg,
        } => {
            // The password first: a refused one must leave the store untouched.
            let pw = password::obtain(pw)?;
            let hash = auth::hash_password(&pw.text)?;
            tenancy::agent_add(&open(cfg)?, bid, id, name, &hash, *max).map_err(explain)?;
            println!("agent {id} added to {bid}");
            if pw.generated {
                println!("password: {}", pw.text);
            }
        }
        AgentCmd::List { bid, cfg } => {
            let list = tenancy::agent_list(&open(cfg)?, bid.as_deref()).map_err(explain)?;
            println!("{:<20} {:<20} {:<24} {:>4}", "BID", "ID", "NAME", "MAX");
            for a in list {
                let max = a.max_concurrent.map_or("-".to_string(), |m| m.to_string());
                println!("{:<20} {:<20} {:<24} {:>4}", a.bid, a.agent_id, a.name, max);
            }
        }
        AgentCmd::Remove { bid, id, cfg } => {
            tenancy::agent_remove(&open(cfg)?, bid, id).map_err(explain)?;
            println!("agent {id} removed from {bid}");
            key::agent_revoked(&cfg.load()?, bid, id);
        }
        AgentCmd::Passwd { bid, id, pw, cfg } => {
            let pw = password::obtain(pw)?;
            let hash = auth::hash_password(&pw.text)?;
            tenancy::agent_set_password(&open(cfg)?, bid, id, &hash).map_err(explain)?;
            println!("password of {id} in {bid} changed");
            if pw.generated {
                println!("password: {}", pw.text);
            }
            key::agent_revoked(&cfg.load()?, bid, id);
        }
    }
    Ok(0)
}

/// Run `kefu business ...`; returns the exit code.
pub(crate) fn run_business(a: &BusinessArgs) -> Result<i32, Box<dyn std::error::Error>> {
    let cfg = match &a.cmd {
        BusinessCmd::Add { cfg, .. }
        | BusinessCmd::List { cfg }
        | BusinessCmd::Secret { cfg, .. } => cfg,
    };
    let conn = open(cfg)?;
    match &a.cmd {
        BusinessCmd::Add { bid, name, .. } => {
            let b = tenancy::business_add(&conn, bid, name).map_err(explain)?;
            println!("business {} added", b.bid);
            println!("secret: {}", b.secret);
        }
        BusinessCmd::List { .. } => {
            println!("{:<20} NAME", "BID");
            for b in tenancy::business_list(&conn).map_err(explain)? {
                println!("{:<20} {}", b.bid, b.name);
            }
        }
        BusinessCmd::Secret { bid, rotate, .. } => {
            let s = if *rotate {
                tenancy::business_rotate_secret(&conn, bid).map_err(explain)?
            } else {
                tenancy::business_get(&conn, bid)
                    .map_err(explain)?
                    .ok_or("no such business")?
                    .secret
            };
            println!("{s}");
        }
    }
    Ok(0)
}
