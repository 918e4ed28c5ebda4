//! Starting worker processes (fork + exec of our own binary with the hidden `worker`
//! subcommand) and the respawn back-off for workers that crash-loop.

use crate::ipc::{CONTROL_FD, HANDOVER_ENV, LISTEN_ENV, LISTEN_FD_BASE};
use crate::sys::process;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How to exec a worker.
#[derive(Debug, Clone)]
pub(crate) struct SpawnSpec {
    /// The binary, resolved once at master start. Exec'ing the path (not `/proc/self/exe`, which
    /// pins the old inode) lets a reload pick up a rebuilt binary installed at the same path.
    pub exe: PathBuf,
    /// The start options workers need to rebuild the same config (`-c`, `--app`, `--listen`...).
    pub config_args: Vec<String>,
    /// The master's pid (`KEFU_MASTER_PID`).
    pub master_pid: i32,
}

/// A freshly started worker: its pid and the master's end of its control socket.
#[derive(Debug)]
pub(crate) struct Spawned {
    /// Worker pid.
    pub pid: i32,
    /// Master's end of the control socketpair (non-blocking).
    pub control: UnixStream,
}

impl SpawnSpec {
    /// The binary to exec: the resolved path if it still exists, else the running image.
    fn program(&self) -> PathBuf {
        if self.exe.exists() {
            self.exe.clone()
        } else {
            PathBuf::from("/proc/self/exe")
        }
    }

    /// Fork + exec `kefu worker --worker-id N ...` with its control socket at fd 3, the
    /// slot's `listeners` from fd 4 on and, for a successor at a reload, its end of the
    /// hand-over socket after them.
    pub(crate) fn spawn(
        &self,
        worker_id: usize,
        inc: u64,
        listeners: &[(String, std::net::TcpListener)],
        handover: Option<&UnixStream>,
    ) -> io::Result<Spawned> {
        // std's pair() creates both ends with SOCK_CLOEXEC: only the dup2'd fd 3 survives exec.
        let (ours, theirs) = UnixStream::pair()?;
        let mut cmd = Command::new(self.program());
        cmd.arg("worker")
            .arg("--worker-id")
            .arg(worker_id.to_string())
            .args(&self.config_args)
            .env("KEFU_WORKER_INCARNATION", inc.to_string())
            .env("KEFU_MASTER_PID", self.master_pid.to_string())
            .env(
                LISTEN_ENV,
                listeners
                    .iter()
                    .map(|(spec, _)| spec.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .stdin(Stdio::null());
        let mut fds = vec![(theirs.as_raw_fd(), CONTROL_FD)];
        for (i, (_, l)) in listeners.iter().enumerate() {
            fds.push((l.as_raw_fd(), LISTEN_FD_BASE + i as i32));
        }
        if let Some(h) = handover {
            let at = LISTEN_FD_BASE + listeners.len() as i32;
            fds.push((h.as_raw_fd(), at));
            cmd.env(HANDOVER_ENV, at.to_string());
        } else {
            cmd.env_remove(HANDOVER_ENV);
        }
        process::worker_pre_exec(&mut cmd, fds, self.master_pid);
        let child = cmd.spawn()?;
        drop(theirs);
        ours.set_nonblocking(true)?;
        // The master reaps with waitpid(-1); the Child handle is not needed (dropping it neither
        // waits nor kills).
        Ok(Spawned {
            pid: child.id() as i32,
            control: ours,
        })
    }
}

/// A worker that dies this soon after start counts as crash-looping.
pub(crate) const CRASH_WINDOW: Duration = Duration::from_secs(1);
/// A worker that lived this long resets the back-off.
pub(crate) const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// First delay once a worker crash-loops.
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(250);
/// Longest respawn delay.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(10);

/// Respawn delay for one worker slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Backoff {
    delay: Duration,
}

impl Backoff {
    /// A worker of this slot exited after living `lived`: how long to wait before respawning.
    pub(crate) fn on_exit(&mut self, lived: Duration) -> Duration {
        if lived >= HEALTHY_AFTER {
            self.delay = Duration::ZERO;
        } else if lived < CRASH_WINDOW {
            self.delay = if self.delay.is_zero() {
                FIRST_DELAY
            } else {
                (self.delay * 2).min(MAX_DELAY)
            };
        }
        // Between the two windows: keep the current delay, neither punish nor forgive.
        self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loop_doubles_up_to_cap_and_healthy_run_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(10);
        assert_eq!(b.on_exit(Duration::from_secs(60)), Duration::ZERO);
        assert_eq!(b.on_exit(quick), FIRST_DELAY);
        assert_eq!(b.on_exit(quick), FIRST_DELAY * 2);
        assert_eq!(b.on_exit(Duration::from_secs(3)), FIRST_DELAY * 2);
        for _ in 0..10 {
            b.on_exit(quick);
        }
        assert_eq!(b.on_exit(quick), MAX_DELAY);
        assert_eq!(b.on_exit(HEALTHY_AFTER), Duration::ZERO);
    }
}
