//! Holding the server to a CPU budget during the measured phase.
//!
//! On a two-core machine one generator core cannot saturate a server that has a whole core:
//! the generator tops out first. Moving the server into a cgroup whose CPU quota the caller
//! set (say 10% of a core) makes the server the bottleneck while the generator keeps
//! headroom, so "deliveries per second on the same CPU budget" compares servers at saturation.
//! Setup (connects, logins) runs unthrottled; the processes go back to the parent cgroup when
//! the window closes, also on early exits (Drop).

use std::io;
use std::path::{Path, PathBuf};

/// Server processes moved into a throttling cgroup until this is dropped.
pub struct Throttle {
    parent: PathBuf,
    pids: Vec<u32>,
}

impl Throttle {
    /// Move every process of `pids` into the cgroup directory `dir` (cgroup v1 or v2: both
    /// take a pid written to `cgroup.procs` and move all its threads).
    pub fn apply(dir: &Path, pids: Vec<u32>) -> io::Result<Throttle> {
        let parent = dir
            .parent()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "cgroup has no parent"))?
            .to_path_buf();
        let procs = dir.join("cgroup.procs");
        let mut moved = Throttle {
            parent,
            pids: Vec::new(),
        };
        for pid in pids {
            match std::fs::write(&procs, pid.to_string()) {
                Ok(()) => moved.pids.push(pid),
                // Exited since the listing: nothing to throttle.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(moved)
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        let procs = self.parent.join("cgroup.procs");
        for pid in &self.pids {
            let _ = std::fs::write(&procs, pid.to_string());
        }
    }
}
