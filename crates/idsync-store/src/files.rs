//! The database file and the folders around it, created private: the store holds names,
//! e-mail addresses and memberships, so nobody but its owner should read them.

use std::path::Path;

/// Creates `dir` and its missing parents, owner-only on unix (see [`Store::open_file`]).
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // The mode given at creation passes through the umask; set it exactly.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Creates the database file empty (which SQLite takes as a new database), owner-only on unix,
/// before SQLite opens it: SQLite would create it with 0644 less the umask. An existing file
/// is left alone.
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            // The mode given at creation passes through the umask; set it exactly.
            Ok(file) => file.set_permissions(std::fs::Permissions::from_mode(0o600)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}
