//! `kefu` binary: parse the command line and hand over to `cli::run`, or, for the hidden
//! `worker` subcommand (exec'd by the master), run one worker process.

use clap::Parser;
use kefu::cli::{Cli, Cmd, WorkerArgs};
use kefu::ipc::{encode, WorkerMsg, CONTROL_FD};
use std::io::Write;

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Worker(w) => worker(w),
        cmd => kefu::cli::run(cmd),
    };
    std::process::exit(code);
}

/// Load the config (the worker re-reads the file, so a reload picks up edits), take the control
/// socket at fd 3 and run the worker loop.
fn worker(w: WorkerArgs) -> i32 {
    let control = match kefu::sys::process::take_control_fd(CONTROL_FD) {
        Ok(c) => c,
        Err(e) => {
            kefu::error!("worker: no control socket on fd {CONTROL_FD} ({e}); run `kefu start`");
            return 2;
        }
    };
    let cfg = match w.cfg.load() {
        Ok(c) => c,
        Err(e) => {
            kefu::error!("worker {}: {e}", w.worker_id);
            let msg = WorkerMsg::Failed {
                reason: e.to_string(),
            };
            let _ = (&control).write_all(&encode(&msg));
            return 1;
        }
    };
    let inc = std::env::var("KEFU_WORKER_INCARNATION")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    kefu::worker::run(cfg, w.worker_id, inc, control)
}
