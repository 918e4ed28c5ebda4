//! The master's unix control socket (`<pid_file>.sock`): the CLI sends one
//! [`crate::ipc::CliRequest`] line and reads one [`crate::ipc::CliReply`] line.

use crate::sys::fs;
use crate::sys::process::MAX_UNIX_PATH;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The control socket path cannot be used.
#[derive(Debug)]
pub(crate) struct PathTooLong(pub PathBuf);

impl fmt::Display for PathTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "control socket path {} is {} bytes, the limit is {MAX_UNIX_PATH}: use a shorter --pid-file",
            self.0.display(),
            self.0.as_os_str().len()
        )
    }
}

impl std::error::Error for PathTooLong {}

/// Refuse a socket path that does not fit in `sun_path` (the kernel would truncate or reject it).
pub(crate) fn check_path(p: &Path) -> Result<(), PathTooLong> {
    if p.as_os_str().as_bytes().len() > MAX_UNIX_PATH {
        Err(PathTooLong(p.to_path_buf()))
    } else {
        Ok(())
    }
}

/// Bind the control socket, mode 0600 whatever the umask (only our user may connect; the
/// master also checks each peer's uid). We hold the instance lock, so a socket file already
/// there was left by a dead master and is removed first.
pub(crate) fn bind(path: &Path) -> io::Result<mio::net::UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // bind(2) creates the socket file as 0777 & ~umask: a chmod afterwards would leave a window
    // in which anyone may connect. The master is single-threaded here.
    fs::with_umask(0o177, || mio::net::UnixListener::bind(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_refused() {
        assert!(check_path(Path::new("/tmp/kefu.pid.sock")).is_ok());
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
        let e = check_path(&long).unwrap_err();
        assert!(e.to_string().contains("use a shorter --pid-file"));
    }
}
