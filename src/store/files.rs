//! File modes of the data dir: it holds business secrets (which sign verified visitor
//! identities), password hashes, messages and visitor data, so no other local user may read it.
//! The dir is 0700 and the database files 0600 whatever the umask; looser ones found at start
//! are tightened with a warning.

use crate::sys::fs::{self, PRIVATE_DIR, PRIVATE_FILE};
use crate::warn;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Suffixes of the files SQLite keeps next to the database in WAL mode.
const SIDE_FILES: [&str; 2] = ["-wal", "-shm"];

/// Create `data_dir` (0700) and the empty database file (0600) if missing, and tighten both and
/// the WAL files if another user could read them. SQLite creates `-wal` and `-shm` with the
/// database file's mode, so creating that one ourselves is what keeps them private.
pub(crate) fn secure(data_dir: &Path, db: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(data_dir)?;
    tighten(data_dir, PRIVATE_DIR)?;
    // Opened (and created if missing) without following a symlink; an existing file is only
    // checked below, so the warning names what was wrong.
    drop(fs::open_append_nofollow(db)?);
    tighten(db, PRIVATE_FILE)?;
    for suffix in SIDE_FILES {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        match tighten(Path::new(&p), PRIVATE_FILE) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            r => r?,
        }
    }
    Ok(())
}

/// Set `path` to `mode` if it grants anything beyond it, with a warning (it was exposed).
fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let have = meta.permissions().mode() & 0o7777;
    if have & !mode != 0 {
        warn!(
            "{} was mode {have:04o}, readable by other local users: setting {mode:04o}",
            path.display()
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    } else if have != mode {
        // Stricter than ours (say 0400): we still need to write it.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;

    #[test]
    fn loose_files_are_tightened() {
        let d = std::env::temp_dir().join(format!("kefu-store-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, Permissions::from_mode(0o755)).unwrap();
        let db = d.join("kefu.db");
        std::fs::write(&db, "").unwrap();
        std::fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
        let wal = d.join("kefu.db-wal");
        std::fs::write(&wal, "").unwrap();
        std::fs::set_permissions(&wal, Permissions::from_mode(0o664)).unwrap();
        secure(&d, &db).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&wal), 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }
}
