//! Files an instance keeps next to its pid file (pid, lock, log, control socket) and in its data
//! dir: opened without following symlinks and with owner-only modes whatever the umask, so a
//! local user can neither read them nor plant a symlink that makes kefu write somewhere else.

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Owner read/write: pid, lock, log, control socket, database files.
pub(crate) const PRIVATE_FILE: u32 = 0o600;
/// Owner only: the data dir.
pub(crate) const PRIVATE_DIR: u32 = 0o700;

/// Set `file`'s mode to exactly `mode` (fchmod) unless it already is: the create mode passed to
/// open(2) is filtered through the umask, so only this makes the mode umask-independent.
pub(crate) fn ensure_mode(file: &File, mode: u32) -> io::Result<()> {
    if file.metadata()?.permissions().mode() & 0o7777 != mode {
        file.set_permissions(Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Create `path` (which must not exist: O_EXCL, so neither a file nor a symlink is reused) for
/// writing, mode 0600.
pub(crate) fn create_new_private(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    ensure_mode(&f, PRIVATE_FILE)?;
    Ok(f)
}

/// Open or create `path` for reading and writing (not truncated), refusing a symlink (ELOOP),
/// mode 0600 (an existing file is tightened).
pub(crate) fn open_private_rw(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    ensure_mode(&f, PRIVATE_FILE)?;
    Ok(f)
}

/// Open or create `path` for appending, refusing a symlink. A new file gets 0600; an existing
/// one keeps its mode (an admin may have opened a log to a group on purpose).
pub(crate) fn open_append_nofollow(path: &Path) -> io::Result<File> {
    let existed = std::fs::symlink_metadata(path).is_ok();
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(PRIVATE_FILE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    if !existed {
        ensure_mode(&f, PRIVATE_FILE)?;
    }
    Ok(f)
}

/// Open `path` read-only, refusing a symlink.
pub(crate) fn open_read_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Whether `dir` is world-writable without the sticky bit: anyone could then replace or plant
/// entries in it, so files kept there cannot be trusted.
pub(crate) fn is_unsafe_dir(dir: &Path) -> io::Result<bool> {
    let mode = std::fs::metadata(dir)?.permissions().mode();
    Ok(mode & 0o002 != 0 && mode & 0o1000 == 0)
}

/// Run `f` with the process umask set to `mask`, then restore it. For sockets, whose mode can
/// only be set through the umask without a window: bind(2) creates the file with 0777 & ~umask.
/// The umask is process-wide: call this only while no other thread creates files.
pub(crate) fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    let old = super::process::umask(mask);
    let out = f();
    super::process::umask(old);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("kefu-sysfs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn symlinks_are_not_followed() {
        let d = dir("link");
        let target = d.join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let loops = |r: io::Result<File>| r.unwrap_err().raw_os_error() == Some(libc::ELOOP);
        assert!(loops(open_private_rw(&link)));
        assert!(loops(open_append_nofollow(&link)));
        assert!(loops(open_read_nofollow(&link)));
        let e = create_new_private(&link).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn modes_do_not_follow_the_umask() {
        let d = dir("mode");
        let p = d.join("f");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o666)).unwrap();
        let f = open_private_rw(&p).unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        let n = create_new_private(&d.join("n")).unwrap();
        assert_eq!(n.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&d, Permissions::from_mode(0o777)).unwrap();
        assert!(is_unsafe_dir(&d).unwrap());
        std::fs::set_permissions(&d, Permissions::from_mode(0o1777)).unwrap();
        assert!(!is_unsafe_dir(&d).unwrap());
        let _ = std::fs::remove_dir_all(&d);
    }
}
