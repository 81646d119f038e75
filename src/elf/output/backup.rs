//! `--backup`: a copy of the object as it was, beside it as `FILE.orig`.
//!
//! objtool: `objtool_create_backup()` — `FILE.orig` opened with `O_CREAT|O_WRONLY|O_TRUNC`
//! and mode 0644 (less the umask; an existing file keeps its mode), then the object's
//! bytes copied into it. It is made right after the object is opened, whether or not
//! anything is written later.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// `FILE.orig`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".orig");
    PathBuf::from(name)
}

/// What went wrong, in objtool's words (`perror()`'s prefix).
#[derive(Debug)]
pub enum BackupError {
    /// `failed to create backup file`
    Create(io::Error),
    /// `failed to open orig file`
    Open(io::Error),
    /// `failed backup write` (a read error is `failed backup read`)
    Copy(io::Error),
}

impl std::fmt::Display for BackupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, e) = match self {
            BackupError::Create(e) => ("failed to create backup file", e),
            BackupError::Open(e) => ("failed to open orig file", e),
            BackupError::Copy(e) => ("failed backup write", e),
        };
        write!(f, "{what}: {}", crate::error::os_message(e))
    }
}

/// Copies `path` to `FILE.orig`.
pub fn backup(path: &Path) -> Result<(), BackupError> {
    let mut dest = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(backup_path(path))
        .map_err(BackupError::Create)?;
    let mut src = std::fs::File::open(path).map_err(BackupError::Open)?;
    io::copy(&mut src, &mut dest).map_err(BackupError::Copy)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_the_file_name_plus_orig() {
        assert_eq!(backup_path(Path::new("a/b.o")), PathBuf::from("a/b.o.orig"));
    }
}
