//! `kefu` binary: parse the command line and hand over to `cli::run`, or, for the hidden
//! `worker` subcommand (exec'd by the master), run one worker process with the app the config
//! names. The binary is the one place that knows every app; the worker loop takes any
//! `Box<dyn App>`.

use clap::Parser;
use kefu::api::App;
use kefu::app::{bridge, chat, echo, gatewayworker, kefu as customer_service};
use kefu::cli::{Cli, Cmd, WorkerArgs};
use kefu::config::Config;
use kefu::ipc::{encode, WorkerMsg, CONTROL_FD, HANDOVER_ENV, LISTEN_ENV, LISTEN_FD_BASE};
use std::io::Write;
use std::os::unix::net::UnixStream;

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Worker(w) => worker(w),
        cmd => kefu::cli::run(cmd),
    };
    std::process::exit(code);
}

/// The app named `name`, built from the config it may need.
fn app_by_name(name: &str, cfg: &Config) -> Option<Box<dyn App>> {
    let app: Option<Box<dyn App>> = match name {
        "echo" => Some(Box::new(echo::Echo)),
        "chat" => Some(Box::new(chat::Chat::default())),
        "kefu" => Some(Box::new(customer_service::Kefu::new(cfg))),
        "bridge" => Some(Box::new(bridge::Bridge::new(cfg))),
        "gatewayworker" => Some(Box::new(gatewayworker::Forward)),
        _ => None,
    };
    app.map(|app| -> Box<dyn App> {
        // With inner ports configured, any app is also a GatewayWorker gateway.
        if cfg.gatewayworker.enabled() {
            let forward = name == "gatewayworker";
            Box::new(gatewayworker::GatewayWorker::new(app, cfg, forward))
        } else {
            app
        }
    })
}

/// Tell the master why this worker cannot start (before the worker loop exists).
fn refuse(control: &UnixStream, worker_id: usize, reason: String) -> i32 {
    kefu::error!("worker {worker_id}: {reason}");
    let _ = (&*control).write_all(&encode(&WorkerMsg::Failed { reason }));
    1
}

/// Load the config (the worker re-reads the file, so a reload picks up edits), take the control
/// socket at fd 3 and run the worker loop.
fn worker(w: WorkerArgs) -> i32 {
    // SAFETY: the master execs a worker with its end of the control socket at CONTROL_FD and
    // nothing in this process has opened, wrapped or closed that descriptor before this call.
    let control = match unsafe { kefu::sys::process::take_control_fd(CONTROL_FD) } {
        Ok(c) => c,
        Err(e) => {
            kefu::error!("worker: no control socket on fd {CONTROL_FD} ({e}); run `kefu start`");
            return 2;
        }
    };
    let mut inherited = Vec::new();
    let specs = std::env::var(LISTEN_ENV).unwrap_or_default();
    for (i, spec) in specs.split(',').filter(|s| !s.is_empty()).enumerate() {
        let fd = LISTEN_FD_BASE + i as i32;
        // SAFETY: the master execs a worker with its slot's listening sockets at
        // LISTEN_FD_BASE.. in the order LISTEN_ENV names them, and nothing in this process
        // has opened, wrapped or closed those descriptors before this loop (each once).
        match unsafe { kefu::sys::process::take_listener_fd(fd) } {
            Ok(l) => inherited.push((spec.to_string(), l)),
            Err(e) => {
                let reason = format!("listener {spec} on fd {fd} unusable: {e}");
                return refuse(&control, w.worker_id, reason);
            }
        }
    }
    let handover = match std::env::var(HANDOVER_ENV).ok().map(|v| v.parse::<i32>()) {
        None => None,
        Some(Ok(fd)) if fd >= LISTEN_FD_BASE => {
            // SAFETY: the master execs a successor with its end of the hand-over socket at the
            // descriptor HANDOVER_ENV names (after the listeners taken above), and nothing in
            // this process has opened, wrapped or closed it before this call.
            match unsafe { kefu::sys::process::take_handover_fd(fd) } {
                Ok(s) => Some(s),
                Err(e) => {
                    kefu::warn!(
                        "worker {}: hand-over fd {fd} unusable ({e}); starting fresh",
                        w.worker_id
                    );
                    None
                }
            }
        }
        Some(_) => {
            kefu::warn!("worker {}: bad {HANDOVER_ENV}; starting fresh", w.worker_id);
            None
        }
    };
    let cfg = match w.cfg.load() {
        Ok(c) => c,
        Err(e) => return refuse(&control, w.worker_id, e.to_string()),
    };
    let Some(app) = app_by_name(&cfg.app, &cfg) else {
        let reason = format!("unknown app {:?}", cfg.app);
        return refuse(&control, w.worker_id, reason);
    };
    let inc = std::env::var("KEFU_WORKER_INCARNATION")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    kefu::worker::run(cfg, app, w.worker_id, inc, control, inherited, handover)
}
