//! One instance per pid file: the `<pid_file>.lock` flock, the pid file itself, the double-fork
//! daemonizing and the readiness gate through which `start -d` learns that every worker listens.

use crate::sys::fs;
use crate::sys::process::{self, Fork};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Why the instance lock could not be taken.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another master holds the lock; its pid if the pid file says.
    Running(Option<i32>),
    /// The lock file could not be opened or locked.
    Io(PathBuf, io::Error),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Running(Some(pid)) => write!(f, "kefu is already running, pid {pid}"),
            LockError::Running(None) => write!(f, "kefu is already running"),
            LockError::Io(p, e) => write!(f, "cannot lock {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for LockError {}

/// The held lock of a running (or starting) instance; released when the master exits.
#[derive(Debug)]
pub(crate) struct InstanceLock {
    /// Kept open: closing the last copy releases the flock.
    _file: File,
    pid_file: PathBuf,
}

/// Read a pid file (`None` if missing or garbled).
pub(crate) fn read_pid(pid_file: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&p| p > 0)
}

fn open_lock(lock_file: &Path) -> Result<File, LockError> {
    // No symlink followed, 0600 whatever the umask: another local user must not be able to
    // hold our lock or make us create a file elsewhere.
    fs::open_private_rw(lock_file).map_err(|e| LockError::Io(lock_file.to_path_buf(), e))
}

/// A pid, lock, log or socket file would live in a directory anyone may write to.
#[derive(Debug)]
pub(crate) struct UnsafeDir {
    /// The file kefu was asked to use.
    pub file: PathBuf,
    /// Its directory (world-writable, no sticky bit).
    pub dir: PathBuf,
}

impl fmt::Display for UnsafeDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refusing to use {}: its directory {} is world-writable without the sticky bit, \
             so any local user could replace it; use a directory only kefu's user can write",
            self.file.display(),
            self.dir.display()
        )
    }
}

impl std::error::Error for UnsafeDir {}

/// Refuse `file` if its directory is world-writable and not sticky. A directory that cannot be
/// inspected is left to the open itself to report.
pub(crate) fn check_dir(file: &Path) -> Result<(), UnsafeDir> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match fs::is_unsafe_dir(dir) {
        Ok(true) => Err(UnsafeDir {
            file: file.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

impl InstanceLock {
    /// Take the instance lock. A pid file left by a dead master (lock free) is stale and will
    /// simply be overwritten by [`Self::write_pid`].
    pub(crate) fn acquire(pid_file: &Path, lock_file: &Path) -> Result<InstanceLock, LockError> {
        let file = open_lock(lock_file)?;
        match process::try_lock_exclusive(&file) {
            Ok(true) => Ok(InstanceLock {
                _file: file,
                pid_file: pid_file.to_path_buf(),
            }),
            Ok(false) => Err(LockError::Running(read_pid(pid_file))),
            Err(e) => Err(LockError::Io(lock_file.to_path_buf(), e)),
        }
    }

    /// Write our pid (the master's, so after daemonizing).
    pub(crate) fn write_pid(&self, pid: u32) -> io::Result<()> {
        // Write then rename so a reader never sees a half-written pid.
        let tmp = {
            let mut s = self.pid_file.as_os_str().to_owned();
            s.push(".tmp");
            PathBuf::from(s)
        };
        // O_EXCL + O_NOFOLLOW: a file or symlink already at the temporary name (a crashed
        // start's, or planted to make us truncate something else) is never opened. unlink(2)
        // removes such an entry itself, never what a symlink points to, so retry once after it.
        let mut f = match fs::create_new_private(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp)?;
                fs::create_new_private(&tmp)?
            }
            r => r?,
        };
        f.write_all(format!("{pid}\n").as_bytes())?;
        drop(f);
        // rename(2) replaces whatever entry has the final name (a symlink too) without following it.
        std::fs::rename(&tmp, &self.pid_file)
    }

    /// Remove the pid file (on exit). The lock file stays: deleting it while held would let two
    /// starters lock two different inodes of the same path.
    pub(crate) fn remove_pid(&self) {
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// Whether a master holds the lock: `Some(pid from the pid file, or None)`, or `None` if free.
pub(crate) fn running_master(pid_file: &Path, lock_file: &Path) -> Option<Option<i32>> {
    let file = fs::open_read_nofollow(lock_file).ok()?;
    match process::try_lock_exclusive(&file) {
        Ok(false) => Some(read_pid(pid_file)),
        // Free (we just took it; closing `file` releases it) or unlockable: not running.
        _ => None,
    }
}

/// What the master reports once startup is over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum StartReport {
    /// Every worker is listening.
    Ready {
        /// Master pid.
        master_pid: u32,
        /// App name.
        app: String,
        /// Worker processes.
        workers: usize,
        /// Listener URLs.
        listeners: Vec<String>,
    },
    /// Startup failed; the master is exiting.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Where the master sends its [`StartReport`].
pub(crate) enum ReadyNotify {
    /// Daemon mode: the write end of the readiness pipe to the waiting `kefu start`.
    Pipe(File),
    /// Foreground: print it (banner) ourselves, and whatever comes only after a good start.
    Callback(Box<dyn FnOnce(&StartReport)>),
    /// Already reported.
    Done,
}

impl fmt::Debug for ReadyNotify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadyNotify::Pipe(_) => "Pipe",
            ReadyNotify::Callback(_) => "Callback",
            ReadyNotify::Done => "Done",
        })
    }
}

impl ReadyNotify {
    /// Report once; later calls do nothing.
    pub(crate) fn report(&mut self, r: &StartReport) {
        match std::mem::replace(self, ReadyNotify::Done) {
            ReadyNotify::Pipe(mut f) => {
                // The parent may have been killed: nothing to do about a write error then.
                let _ = f.write_all(&crate::ipc::encode(r));
            }
            ReadyNotify::Callback(cb) => cb(r),
            ReadyNotify::Done => {}
        }
    }
}

/// The `kefu start -d` side of the readiness pipe.
#[derive(Debug)]
pub(crate) struct ReadyWaiter(File);

impl ReadyWaiter {
    /// Block until the daemon reports (or dies: EOF without a report).
    pub(crate) fn wait(mut self) -> StartReport {
        let mut buf = Vec::new();
        let _ = self.0.read_to_end(&mut buf);
        serde_json::from_slice::<StartReport>(buf.trim_ascii()).unwrap_or(StartReport::Failed {
            reason: "the daemon exited before it was ready (see the log file)".into(),
        })
    }
}

/// Result of [`daemonize`] in each process that returns from it.
#[derive(Debug)]
pub(crate) enum Daemonized {
    /// The invoking process: wait for the report, print, exit.
    Parent(ReadyWaiter),
    /// The daemon (grandchild): run the master and report through this.
    Daemon(ReadyNotify),
}

/// Double fork + setsid + umask(022), stdin from /dev/null, stdout/stderr appended to `log`.
/// No chdir: relative paths given on the command line keep working.
pub(crate) fn daemonize(log: &Path) -> io::Result<Daemonized> {
    let (r, w) = process::pipe()?;
    match process::fork_single_threaded()? {
        Fork::Parent(_) => {
            drop(w);
            return Ok(Daemonized::Parent(ReadyWaiter(r)));
        }
        Fork::Child => drop(r),
    }
    let mut notify = ReadyNotify::Pipe(w);
    let step = || -> io::Result<Fork> {
        process::setsid()?;
        // The second fork makes sure the daemon is not a session leader, so it can never
        // reacquire a controlling terminal.
        process::fork_single_threaded()
    };
    match step() {
        Ok(Fork::Parent(_)) => process::exit_immediately(0),
        Ok(Fork::Child) => {}
        Err(e) => {
            notify.report(&StartReport::Failed {
                reason: format!("daemonize: {e}"),
            });
            process::exit_immediately(1);
        }
    }
    process::umask(0o022);
    if let Err(e) = process::redirect_stdio(log) {
        notify.report(&StartReport::Failed {
            reason: format!("cannot open log file {}: {e}", log.display()),
        });
        process::exit_immediately(1);
    }
    Ok(Daemonized::Daemon(notify))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_detects_running_and_stale() {
        let dir = std::env::temp_dir().join(format!("kefu-daemon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid = dir.join("k.pid");
        let lock = dir.join("k.pid.lock");
        // Stale pid file, nobody holds the lock.
        std::fs::write(&pid, "999999\n").unwrap();
        assert_eq!(running_master(&pid, &lock), None);
        let held = InstanceLock::acquire(&pid, &lock).unwrap();
        held.write_pid(4242).unwrap();
        assert_eq!(read_pid(&pid), Some(4242));
        assert_eq!(running_master(&pid, &lock), Some(Some(4242)));
        assert!(matches!(
            InstanceLock::acquire(&pid, &lock),
            Err(LockError::Running(Some(4242)))
        ));
        held.remove_pid();
        drop(held);
        assert_eq!(running_master(&pid, &lock), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pid_file_ignores_a_planted_temp_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("kefu-daemon-tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("k.pid.tmp")).unwrap();
        let held = InstanceLock::acquire(&dir.join("k.pid"), &dir.join("k.pid.lock")).unwrap();
        held.write_pid(77).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(read_pid(&dir.join("k.pid")), Some(77));
        let mode = std::fs::metadata(dir.join("k.pid"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_dir(&dir.join("k.pid")).is_err());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(check_dir(&dir.join("k.pid")).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
