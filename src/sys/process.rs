//! Process control: fork/setsid for daemonizing, worker exec setup (fd 3, parent-death signal,
//! own process group), kill, waitpid, flock, stdio redirection.
//!
//! Everything here is a thin, safe wrapper; the callers in `master/` and `cli/` hold the policy.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Which side of a fork we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// The original process; holds the child's pid.
    Parent(i32),
    /// The new process.
    Child,
}

/// Threads of this process, from /proc (unknown counts as many).
fn threads_in_process() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(usize::MAX)
}

/// fork(2), refused unless the process has exactly one thread.
///
/// After fork only the calling thread exists in the child; with other threads alive, a lock
/// they held (allocator, stdio) would stay locked forever. Checking /proc makes this safe to call.
pub fn fork_single_threaded() -> io::Result<Fork> {
    if threads_in_process() != 1 {
        return Err(io::Error::other(
            "fork refused: process has more than one thread",
        ));
    }
    let pid = syscall!(fork())?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent(pid)
    })
}

/// setsid(2): new session, no controlling terminal.
pub fn setsid() -> io::Result<()> {
    syscall!(setsid()).map(|_| ())
}

/// umask(2); returns the previous mask.
pub fn umask(mode: u32) -> u32 {
    // SAFETY: umask(2) only changes the process file mode mask and cannot fail.
    unsafe { libc::umask(mode as libc::mode_t) as u32 }
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Terminate the process immediately, without running atexit handlers or flushing stdio:
/// the right exit for the intermediate child of a double fork, which shares buffers with its parent.
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit(2) never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// Point stdin at /dev/null and stdout/stderr at `log` (opened for append without following a
/// symlink, created 0600).
pub fn redirect_stdio(log: &Path) -> io::Result<()> {
    let null = File::open("/dev/null")?;
    let out = super::fs::open_append_nofollow(log)?;
    syscall!(dup2(null.as_raw_fd(), 0))?;
    syscall!(dup2(out.as_raw_fd(), 1))?;
    syscall!(dup2(out.as_raw_fd(), 2))?;
    Ok(())
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0 as libc::c_int; 2];
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC))?;
    // SAFETY: pipe2(2) succeeded, so both fds are open and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(r), File::from(w)))
}

/// Send `sig` to `pid` (kill(2)).
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    if pid <= 0 {
        // Never let a bad pid turn into "signal the whole process group" (0) or "everyone" (-1).
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    syscall!(kill(pid, sig)).map(|_| ())
}

/// The calling thread's time on a CPU and its time runnable but waiting for one (the
/// scheduler's `run_delay`), from `/proc/thread-self/schedstat`; None where it is missing.
/// Reads a small procfs file: for a one-off measurement, never in the event loop's turns.
pub(crate) fn thread_sched_times() -> Option<(std::time::Duration, std::time::Duration)> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut f = text.split_ascii_whitespace().map(|v| v.parse::<u64>().ok());
    let (cpu, wait) = (f.next()??, f.next()??);
    Some((
        std::time::Duration::from_nanos(cpu),
        std::time::Duration::from_nanos(wait),
    ))
}

/// Raise this process's soft limit of open descriptors towards `want` (never past the hard
/// limit, never lowered); returns the soft limit in force after. Children inherit it: how a
/// test that holds thousands of sockets gets room for them and for the server it starts.
pub fn raise_nofile(want: u64) -> io::Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `r`, which outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let target = want.min(r.rlim_max);
    if r.rlim_cur < target {
        r.rlim_cur = target;
        // SAFETY: setrlimit reads one valid rlimit from `r`.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(r.rlim_cur)
}

/// Whether a process with this pid exists (it may be a zombie).
pub fn is_alive(pid: i32) -> bool {
    match kill(pid, 0) {
        Ok(()) => true,
        // EPERM: it exists but belongs to someone else.
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}

/// Reap one exited child without blocking: `Some((pid, raw wait status))`, or `None` if none is ready.
pub fn reap_child() -> io::Result<Option<(i32, i32)>> {
    let mut status: libc::c_int = 0;
    loop {
        match syscall!(waitpid(-1, &mut status, libc::WNOHANG)) {
            Ok(0) => return Ok(None),
            Ok(pid) => return Ok(Some((pid, status))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // ECHILD: no children at all.
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// How a child ended, decoded from a raw wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// exit(code).
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitKind {
    /// Decode a raw `waitpid` status.
    pub fn from_raw(status: i32) -> ExitKind {
        if libc::WIFSIGNALED(status) {
            ExitKind::Signal(libc::WTERMSIG(status))
        } else {
            ExitKind::Code(libc::WEXITSTATUS(status))
        }
    }
}

/// Name of a signal number (`SIGKILL`), or `SIG<n>` for unusual ones.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("SIG{sig}"),
    };
    name.to_string()
}

/// Try to take an exclusive flock(2) without blocking: `Ok(false)` if someone else holds it.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    loop {
        match syscall!(flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Release a flock(2) taken with [`try_lock_exclusive`].
pub fn unlock(file: &File) -> io::Result<()> {
    syscall!(flock(file.as_raw_fd(), libc::LOCK_UN)).map(|_| ())
}

/// Most descriptors one worker inherits (its control socket and its listeners).
pub const MAX_INHERITED: usize = 64;

/// Prepare `cmd` to run as a worker of `master_pid`.
///
/// In the child, before exec: each `(fd, target)` of `fds` is dup'd to `target` without
/// close-on-exec (everything else of ours is close-on-exec), the child asks for SIGKILL when its
/// parent dies (PR_SET_PDEATHSIG; so a `kill -9` of the master leaves no orphans), and moves to
/// its own process group (so a terminal Ctrl-C reaches only the master, which then stops the
/// workers in order).
pub fn worker_pre_exec(cmd: &mut Command, fds: Vec<(RawFd, RawFd)>, master_pid: i32) {
    let hook = move || -> io::Result<()> {
        // Only async-signal-safe calls below: we are between fork and exec. `fds` was built
        // before the fork; it is only read here.
        if fds.len() > MAX_INHERITED {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        // Sources and targets may overlap (a listener at fd 4 that must move to 5 while
        // another moves to 4): park every source above the highest target first. (Just
        // above it: a low `ulimit -n` leaves no room higher up.)
        let above = fds.iter().map(|&(_, t)| t).max().unwrap_or(0) + 1;
        let mut parked = [0 as RawFd; MAX_INHERITED];
        for (i, &(src, _)) in fds.iter().enumerate() {
            parked[i] = syscall!(fcntl(src, libc::F_DUPFD_CLOEXEC, above))?;
        }
        for (i, &(_, target)) in fds.iter().enumerate() {
            // dup2 leaves the target without FD_CLOEXEC: it survives the exec.
            syscall!(dup2(parked[i], target))?;
            syscall!(close(parked[i]))?;
        }
        syscall!(prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong
        ))?;
        // SAFETY: getppid(2) has no preconditions.
        if unsafe { libc::getppid() } != master_pid {
            // The master died between fork and prctl: the death signal will never come.
            // No allocation here (we are between fork and exec): a plain errno.
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        syscall!(setpgid(0, 0))?;
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec and only makes async-signal-safe
    // system calls (fcntl, dup2, close, prctl, getppid, setpgid); it allocates nothing.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Take ownership of a listening TCP socket the master left at `fd`, non-blocking and
/// close-on-exec.
///
/// # Safety
/// `fd` must not be owned by anything else in this process: the returned listener closes it
/// when dropped. The function checks that it is an open, listening stream socket.
pub unsafe fn take_listener_fd(fd: RawFd) -> io::Result<std::net::TcpListener> {
    syscall!(fcntl(fd, libc::F_GETFD))?;
    let mut listening: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ACCEPTCONN,
        &mut listening as *mut libc::c_int as *mut libc::c_void,
        &mut len
    ))?;
    if listening != 1 {
        return Err(io::Error::other("inherited fd is not a listening socket"));
    }
    syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
    // SAFETY: the fd is open and a listening socket (checked above) and the caller vouches
    // that nothing else owns it.
    let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Take ownership of the unix stream socket the master left at `fd` for a reload's hand-over
/// (the successor's end), close-on-exec.
///
/// # Safety
/// `fd` must not be owned by anything else in this process: the returned stream closes it
/// when dropped. The function checks that it is an open unix stream socket.
pub unsafe fn take_handover_fd(fd: RawFd) -> io::Result<std::os::unix::net::UnixStream> {
    syscall!(fcntl(fd, libc::F_GETFD))?;
    let (ty, domain) = (
        socket_int(fd, libc::SO_TYPE)?,
        socket_int(fd, libc::SO_DOMAIN)?,
    );
    if ty != libc::SOCK_STREAM || domain != libc::AF_UNIX {
        return Err(io::Error::other("hand-over fd is not a unix stream socket"));
    }
    syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
    // SAFETY: the fd is open and a unix stream socket (checked above), and the caller vouches
    // that nothing else owns it.
    Ok(unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) })
}

/// An integer `SOL_SOCKET` option of `fd` (fails with the errno if `fd` is not a socket).
fn socket_int(fd: RawFd, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        opt,
        &mut v as *mut libc::c_int as *mut libc::c_void,
        &mut len
    ))?;
    Ok(v)
}

/// Set once the control fd has been wrapped, so it can never get two owners.
static CONTROL_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Take ownership of the control socket the master left at `fd` (a worker calls this once),
/// and mark it close-on-exec so the worker's own children do not inherit it.
///
/// # Safety
/// `fd` must not be owned by anything else in this process (no `File`, socket or other
/// wrapper holds it, and nothing will close it): the returned stream closes it when dropped.
/// The function checks that it is an open stream socket and that it is taken only once.
pub unsafe fn take_control_fd(fd: RawFd) -> io::Result<std::os::unix::net::UnixStream> {
    if CONTROL_TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(io::Error::other("control fd already taken"));
    }
    // F_GETFD fails with EBADF if the fd is not open (worker started by hand).
    syscall!(fcntl(fd, libc::F_GETFD))?;
    let ty = socket_int(fd, libc::SO_TYPE)?;
    if ty != libc::SOCK_STREAM {
        return Err(io::Error::other("control fd is not a stream socket"));
    }
    syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
    // SAFETY: the fd is open and a stream socket (checked above), the caller vouches that
    // nothing else owns it, and CONTROL_TAKEN guarantees we wrap it only once.
    Ok(unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) })
}

/// The kernel release (`uname -r`), e.g. `6.1.0-28-amd64`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Longest path a unix socket address can hold (sun_path is 108 bytes including the NUL).
pub const MAX_UNIX_PATH: usize = 107;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_kinds() {
        assert_eq!(ExitKind::from_raw(0), ExitKind::Code(0));
        assert_eq!(ExitKind::from_raw(9), ExitKind::Signal(9));
        assert_eq!(ExitKind::from_raw(250 << 8), ExitKind::Code(250));
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(64), "SIG64");
    }

    #[test]
    fn lock_is_exclusive_across_open_files() {
        let p = std::env::temp_dir().join(format!("kefu-lock-{}", std::process::id()));
        let a = File::create(&p).unwrap();
        let b = File::open(&p).unwrap();
        assert!(try_lock_exclusive(&a).unwrap());
        assert!(!try_lock_exclusive(&b).unwrap());
        unlock(&a).unwrap();
        assert!(try_lock_exclusive(&b).unwrap());
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn bad_pids_are_refused() {
        assert!(kill(0, 0).is_err());
        assert!(kill(-1, 0).is_err());
        assert!(is_alive(std::process::id() as i32));
    }
}
