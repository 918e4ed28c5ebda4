//! `kefu agent ...` and `kefu business ...`: manage the kefu app's tenants and agents in the
//! store directly (works whether or not the server runs: SQLite serializes the writers).

use super::key;
use super::password::{self, PasswordArgs};
use super::ConfigArgs;
use crate::app::kefu::{auth, upload};
use crate::store::db::Db;
use crate::store::profile::{self, Patch};
use crate::store::tenancy::AgentRole;
use crate::store::{self, tenancy, StoreError};
use clap::{Args, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};

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
        /// Make it an admin of its business (manages agents, departments and settings from
        /// the console).
        #[arg(long)]
        admin: bool,
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
    /// Change an agent: what visitors see of it (its display name and avatar, next to its
    /// messages; open sessions show the new name after their next login) and its role.
    Set {
        /// Business id.
        #[arg(long)]
        bid: String,
        /// Agent id.
        #[arg(long)]
        id: String,
        /// New display name (1..64 characters).
        #[arg(long)]
        name: Option<String>,
        /// Avatar: a PNG, JPEG, GIF or WebP file (checked and stripped like a chat upload).
        #[arg(long, conflicts_with = "no_avatar")]
        avatar: Option<PathBuf>,
        /// Remove the avatar (the pages show the name's first letter).
        #[arg(long)]
        no_avatar: bool,
        /// Make it an admin of its business, or a plain agent.
        #[arg(long, value_parser = ["admin", "agent"])]
        role: Option<String>,
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
    /// Show what the business's visitors see (name, logo, colour, messages, agents).
    Show {
        /// Business id.
        #[arg(long)]
        bid: String,
        /// Configuration (for data_dir).
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Change what the business's visitors see; options left out are kept, an empty value
    /// resets a field to the pages' default (agents may do the same in the console).
    Set {
        /// Business id.
        #[arg(long)]
        bid: String,
        /// Display name (1..40 characters).
        #[arg(long)]
        name: Option<String>,
        /// Logo: a PNG, JPEG, GIF or WebP file (checked and stripped like a chat upload).
        #[arg(long, conflicts_with = "no_logo")]
        logo: Option<PathBuf>,
        /// Remove the logo.
        #[arg(long)]
        no_logo: bool,
        /// Colour of the visitor panel, #rrggbb ("" for the default).
        #[arg(long)]
        color: Option<String>,
        /// Shown to a visitor before the first message (at most 500 characters).
        #[arg(long)]
        welcome: Option<String>,
        /// Shown with the leave-a-message form when no agent is online.
        #[arg(long)]
        offline: Option<String>,
        /// The chat window's title (at most 40 characters; "" for the display name).
        #[arg(long)]
        title: Option<String>,
        /// The side of the page the widget's button sits on.
        #[arg(long, value_parser = ["right", "left"])]
        position: Option<String>,
        /// The leave-a-message form's heading (at most 120 characters).
        #[arg(long)]
        leave_prompt: Option<String>,
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

fn open(cfg: &ConfigArgs) -> Result<Db, Box<dyn std::error::Error>> {
    let c = cfg.load()?;
    Ok(store::open_target(store::Target::of(&c.kefu, &c.data_dir))?)
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
            admin,
            cfg,
        } => {
            // The password first: a refused one must leave the store untouched.
            let pw = password::obtain(pw)?;
            let hash = auth::hash_password(&pw.text)?;
            let role = if *admin {
                AgentRole::Admin
            } else {
                AgentRole::Agent
            };
            tenancy::agent_add_as(&open(cfg)?, bid, id, name, &hash, *max, role)
                .map_err(explain)?;
            println!("agent {id} added to {bid} ({})", role.as_str());
            if pw.generated {
                println!("password: {}", pw.text);
            }
        }
        AgentCmd::List { bid, cfg } => {
            let list = tenancy::agent_list(&open(cfg)?, bid.as_deref()).map_err(explain)?;
            println!(
                "{:<20} {:<20} {:<24} {:>4} {:<6} STATE",
                "BID", "ID", "NAME", "MAX", "ROLE"
            );
            for a in list {
                let max = a.max_concurrent.map_or("-".to_string(), |m| m.to_string());
                let state = if a.disabled { "disabled" } else { "enabled" };
                println!(
                    "{:<20} {:<20} {:<24} {:>4} {:<6} {state}",
                    a.bid,
                    a.agent_id,
                    a.name,
                    max,
                    a.role.as_str()
                );
            }
        }
        AgentCmd::Remove { bid, id, cfg } => {
            tenancy::agent_remove(&open(cfg)?, bid, id).map_err(explain)?;
            println!("agent {id} removed from {bid}");
            key::agent_revoked(&cfg.load()?, bid, id);
        }
        AgentCmd::Set {
            bid,
            id,
            name,
            avatar,
            no_avatar,
            role,
            cfg,
        } => {
            if name.is_none() && avatar.is_none() && !no_avatar && role.is_none() {
                return Err(
                    "nothing to change: give --name, --avatar, --no-avatar or --role".into(),
                );
            }
            if let Some(n) = name {
                profile::clean_agent_name(n).map_err(|e| e.as_str())?;
            }
            let conn = open(cfg)?;
            if tenancy::agent_get(&conn, bid, id)
                .map_err(explain)?
                .is_none()
            {
                return Err("no such agent or business".into());
            }
            let url = match (avatar, no_avatar) {
                (Some(f), _) => Some(store_image(&conn, cfg, bid, f)?),
                (None, true) => Some(String::new()),
                (None, false) => None,
            };
            if let Some(r) = role.as_deref().and_then(AgentRole::parse) {
                tenancy::agent_set_role(&conn, bid, id, r).map_err(explain)?;
                println!("agent {id} of {bid} is now {}", r.as_str());
            }
            if name.is_some() || url.is_some() {
                profile::set_agent(&conn, bid, id, name.as_deref(), url.as_deref())
                    .map_err(explain)?;
                show(&conn, bid)?;
            }
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
        | BusinessCmd::Secret { cfg, .. }
        | BusinessCmd::Show { cfg, .. }
        | BusinessCmd::Set { cfg, .. } => cfg,
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
        BusinessCmd::Show { bid, .. } => show(&conn, bid)?,
        BusinessCmd::Set {
            bid,
            name,
            logo,
            no_logo,
            color,
            welcome,
            offline,
            title,
            position,
            leave_prompt,
            ..
        } => {
            // Check the text fields before storing an image for nothing.
            let mut patch = Patch {
                name: name.clone(),
                logo: None,
                color: color.clone(),
                welcome: welcome.clone(),
                offline: offline.clone(),
                title: title.clone(),
                side: position.as_deref().map(|p| {
                    if p == "left" {
                        profile::Side::Left
                    } else {
                        profile::Side::Right
                    }
                }),
                leave_prompt: leave_prompt.clone(),
            };
            profile::clean(&patch).map_err(|e| e.as_str())?;
            if profile::get(&conn, bid).map_err(explain)?.is_none() {
                return Err("no such business".into());
            }
            patch.logo = match (logo, no_logo) {
                (Some(f), _) => Some(store_image(&conn, cfg, bid, f)?),
                (None, true) => Some(String::new()),
                (None, false) => None,
            };
            profile::set(&conn, bid, &patch).map_err(explain)?;
            show(&conn, bid)?;
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

/// Print a business's profile and its agents' faces.
fn show(conn: &Db, bid: &str) -> Result<(), Box<dyn std::error::Error>> {
    let p = profile::get(conn, bid)
        .map_err(explain)?
        .ok_or("no such business")?;
    let or_default = |s: &str| {
        if s.is_empty() {
            "(default)".to_string()
        } else {
            s.to_string()
        }
    };
    println!("bid:     {}", p.bid);
    println!("name:    {}", p.name);
    println!("logo:    {}", or_default(&p.logo));
    println!("color:   {}", or_default(&p.color));
    println!(
        "welcome: {}",
        or_default(&p.welcome).replace('\n', "\n         ")
    );
    println!(
        "offline: {}",
        or_default(&p.offline).replace('\n', "\n         ")
    );
    println!("title:   {}", or_default(&p.title));
    println!("side:    {}", p.side.as_str());
    println!("prompt:  {}", or_default(&p.leave_prompt));
    for f in profile::faces(conn, bid).map_err(explain)? {
        println!(
            "agent:   {} {} {}",
            f.agent_id,
            f.name,
            or_default(&f.avatar)
        );
    }
    Ok(())
}

/// Check, strip and store an image file as `bid`'s upload (the checks of `POST /api/upload`),
/// kept for good; returns its URL.
fn store_image(
    conn: &Db,
    cfg: &ConfigArgs,
    bid: &str,
    file: &Path,
) -> Result<String, Box<dyn std::error::Error>> {
    let c = cfg.load()?;
    let max = c.kefu.upload_max_bytes;
    let mut body = Vec::new();
    std::fs::File::open(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .take(max as u64 + 1)
        .read_to_end(&mut body)?;
    if body.len() > max {
        return Err(format!("{}: larger than upload_max_bytes ({max})", file.display()).into());
    }
    let kind = upload::sniff(&body)
        .ok_or_else(|| format!("{}: not a PNG, JPEG, GIF or WebP image", file.display()))?;
    upload::ensure_table(conn).map_err(explain)?;
    let who = upload::Uploader::Agent(bid.to_string());
    let stored = upload::accept(conn, &c.data_dir, &who, &body, kind, 0, store::now_ms())
        .map_err(explain)?
        .map_err(|r| format!("{}: refused ({r:?})", file.display()))?;
    let url = format!("{}{}", upload::URL_PREFIX, stored.name);
    upload::mark_referenced(conn, &url).map_err(explain)?;
    Ok(url)
}
